"""`python3 manage.py test [pytest args]`: the project's one test command (pytest).

Uses PostgreSQL and Redis on their standard local ports (starting them if installed but
stopped) and falls back to SQLite and an in-memory broker where none exist. Installs Debian's
chromium for the browser tests when it is missing and we may.
"""
import os
import sys

from django.core.management.base import BaseCommand

from config import devservices


class Command(BaseCommand):
    help = "Run the test suite with pytest against real local services where they exist."

    def add_arguments(self, parser):
        parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, after --")

    def run_from_argv(self, argv):
        # Everything after `test` goes to pytest untouched (-k, -x, paths…).
        self.execute_pytest(argv[2:])

    def handle(self, *args, **options):  # pragma: no cover - run_from_argv handles the CLI
        self.execute_pytest(options["pytest_args"])

    def execute_pytest(self, pytest_args: list[str]) -> None:
        env = dict(os.environ)
        env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
        if "DATABASE_URL" not in env:
            url = devservices.ensure_postgres()
            if url:
                env["DATABASE_URL"] = url
        if "CELERY_BROKER_URL" not in env:
            url = devservices.ensure_redis()
            if url:
                env["CELERY_BROKER_URL"] = url
        chromium = devservices.ensure_chromium()
        if chromium:
            env.setdefault("CHROMIUM_PATH", chromium)
        print(
            f"[test] database: {env.get('DATABASE_URL', 'sqlite (no PostgreSQL here)')}; "
            f"broker: {env.get('CELERY_BROKER_URL', 'memory:// (no Redis here)')}; "
            f"browser: {chromium or 'none (browser tests will skip)'}",
            flush=True,
        )
        os.execve(sys.executable, [sys.executable, "-m", "pytest", *pytest_args], env)
