"""The PostgreSQL functions of the labeling hot path, as the database runs them, one file per service:
serving.sql (`labeling_next`, labeling/services/serving.py) and labels.sql (`labeling_submit`,
labeling/services/labels.py). Other databases take the services' ORM path and load nothing.

Each file holds its functions' current definitions (CREATE OR REPLACE FUNCTION statements with the
tables' real names, and `--` comments), and the migrations install them from here with `LoadSQL`, so
a fresh database ends with exactly these texts. Any change to a file comes with a new migration that
re-runs the loader for that file, `LoadSQL("<file>", digest=...)` with the digest
tests/labeling/test_sql.py asks for: without one, fresh databases would get the change and existing
ones would not. A changed signature also needs a DROP FUNCTION of the old one there (CREATE OR REPLACE
adds an overload), and the new migration's reverse puts back the previous text.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.db.migrations.operations.base import Operation

SQL_DIR = Path(__file__).resolve().parent

_FUNCTION = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+FUNCTION\s+(?P<name>\w+)\s*\(.*?\bAS\s+(?P<tag>\$\w*\$)(?P<body>.*?)(?P=tag)\s*;",
    re.S | re.I)
_COMMENT = re.compile(r"--[^\n]*")
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class Function:
    name: str
    statement: str  # CREATE OR REPLACE FUNCTION … $fn$, as executed
    body: str  # between the dollar quotes: what pg_proc.prosrc holds


def sql_file(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def functions(text: str) -> list[Function]:
    """The functions a file defines, in order; anything but those statements and `--` comments is refused
    (the digest and the tests see the statements only)."""
    found, at = [], 0
    while (at := _SPACE.match(text, at).end()) < len(text):
        if match := _COMMENT.match(text, at) or _FUNCTION.match(text, at):
            if match.re is _FUNCTION:
                found.append(Function(match["name"], match[0].rstrip("; \n\t"), match["body"]))
            at = match.end()
        else:
            raise ValueError(f"not a CREATE OR REPLACE FUNCTION statement nor a comment: {text[at:at + 80]!r}")
    return found


def digest(text: str) -> str:
    """What the migrations record of a file: its statements' hash (comments outside them are free)."""
    return hashlib.sha256("\n".join(f.statement for f in functions(text)).encode()).hexdigest()[:16]


class LoadSQL(Operation):
    """Install the functions of labeling/sql/`name` as the file is now (PostgreSQL only).

    `digest`: the file's version this migration was written for; the newest loader of each file must
    carry the file's current digest. `reverse_sql`: statements, or a callable that derives them from
    this migration's version of the file (refused once the file has moved on: give the reverse its
    own copy of the text then)."""

    reduces_to_sql = True

    def __init__(self, name: str, digest: str, reverse_sql: Sequence[str] | Callable[[str], str] | None = None):
        self.name, self.digest, self.reverse_sql = name, digest, reverse_sql
        self.reversible = reverse_sql is not None

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            for function in functions(sql_file(self.name)):
                schema_editor.execute(function.statement, params=None)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in self.reverse_statements():
            schema_editor.execute(statement, params=None)

    def reverse_statements(self) -> list[str]:
        if not callable(self.reverse_sql):
            return list(self.reverse_sql or [])
        text = sql_file(self.name)
        if digest(text) != self.digest:
            raise RuntimeError(f"labeling/sql/{self.name} changed after the migration whose reverse derives from it; "
                               "give that reverse its own copy of the text it needs")
        return [function.statement for function in functions(self.reverse_sql(text))]

    def describe(self):
        return f"Load the functions of labeling/sql/{self.name}"

    @property
    def migration_name_fragment(self):
        return f"load_{Path(self.name).stem}_sql"
