"""Migration tests: the database taken back to a migration, rows written with that state's models, then
forward to the newest migration again (whatever the test asserts)."""
import contextlib

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@contextlib.contextmanager
def at_migration(target: list[tuple[str, str]]):
    """Yield the historical apps at `target`; on exit (even on error) migrate to the newest migrations."""
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    try:
        yield executor.loader.project_state(target).apps
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
