"""The hot path's PostgreSQL functions as installed are the files in labeling/sql/, and the migrations
keep it so (the file and migration checks run on any database).

The test database installs the functions from the files, so these tests alone would pass after a file
was edited without a migration; what catches that is the digest the newest migration loading each
file carries (existing databases only change through a migration).
"""
import re

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from labeling.sql import SQL_DIR, LoadSQL, digest, functions, sql_file

postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the SQL functions exist on PostgreSQL only")

FILES = sorted(path.name for path in SQL_DIR.glob("*.sql"))
PREFIX = "labeling_"  # every project function's name starts so; those installed in the schema must have a file
SCRATCH = "labeling_sql_check"


def _file_functions() -> dict:
    found = [function for name in FILES for function in functions(sql_file(name))]
    assert len({f.name for f in found}) == len(found), "a function defined twice in labeling/sql/"
    return {f.name: f for f in found}


def _installed(schema: str | None = None) -> list[tuple[str, str, str]]:
    """(name, body, definition) of the schema's project functions, one row per overload."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.prosrc, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = coalesce(%s, current_schema()) AND starts_with(p.proname, %s) ORDER BY p.proname",
            [schema, PREFIX])
        return cursor.fetchall()


def _loaders() -> dict[str, list[LoadSQL]]:
    """Each file's LoadSQL operations, in migration order."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    plan = [key for leaf in graph.leaf_nodes("labeling") for key in graph.forwards_plan(leaf)]
    loads = {}
    for key in dict.fromkeys(plan):
        for operation in graph.nodes[key].operations:
            if isinstance(operation, LoadSQL):
                loads.setdefault(operation.name, []).append(operation)
    return loads


def test_files_hold_project_functions():
    """Each file defines functions (and nothing else), named with the prefix; the services call these two."""
    assert all(functions(sql_file(name)) for name in FILES)
    assert all(name.startswith(PREFIX) for name in _file_functions())
    assert {"labeling_next", "labeling_submit"} <= set(_file_functions())


@postgresql
@pytest.mark.django_db
def test_installed_bodies_are_the_files():
    """Every function in the files is installed once, with the file's body; every project function
    installed has a file (a changed signature leaves the old overload behind)."""
    files = _file_functions()
    installed = _installed()
    assert sorted(name for name, _, _ in installed) == sorted(files)
    for name, body, _ in installed:
        assert body.strip() == files[name].body.strip(), f"{name} as installed is not labeling/sql's"


@postgresql
@pytest.mark.django_db
def test_installed_definitions_are_the_files():
    """Signature, result and options too: the files' statements created in a scratch schema read back
    as the installed ones do."""
    files = _file_functions()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {SCRATCH}")  # rolled back with the test's transaction
        for name, function in files.items():
            cursor.execute(function.statement.replace(f"FUNCTION {name}(", f"FUNCTION {SCRATCH}.{name}(", 1))

    def unqualified(rows):
        return {name: re.sub(rf"FUNCTION \S+\.{name}\(", f"FUNCTION {name}(", definition, count=1)
                for name, _, definition in rows}

    assert unqualified(_installed()) == unqualified(_installed(SCRATCH))


def test_newest_migration_loads_each_file_as_it_is():
    """A file edited without a migration fails here: fresh databases would get the edit, existing ones not."""
    loads = _loaders()
    assert sorted(loads) == FILES
    for name, operations in loads.items():
        current = digest(sql_file(name))
        assert operations[-1].digest == current, (
            f"labeling/sql/{name} changed without a migration: add one with "
            f'LoadSQL("{name}", digest="{current}", reverse_sql=...) (see labeling/sql/__init__.py)')


def test_reverses_rebuild_the_previous_version():
    """A reverse derived from a file (0008's) gives the version the migration before it was written for."""
    for name, operations in _loaders().items():
        for before, operation in zip(operations, operations[1:]):
            if callable(operation.reverse_sql):
                assert operation.digest == digest(sql_file(name)), (
                    f"{operation.describe()}: the file changed since; give this reverse its own copy of the text")
                text = operation.reverse_sql(sql_file(name))
                assert digest(text) == before.digest, f"{operation.describe()}: its reverse is not the previous version"


def test_files_name_the_models_tables():
    """The files use the tables' real names: those the models have now."""
    files = _file_functions()
    named = {word for f in files.values() for word in re.findall(r"\b(?:labeling|auth)_\w+", f.statement)}
    tables = {model._meta.db_table for model in apps.get_models()}
    assert named - set(files) <= tables
    assert get_user_model()._meta.db_table in named
