"""What the PostgreSQL benches share: the local server's address and a statement runner.

Imported as `from _pg import PG, admin_sql` (the benches run as scripts, so `bench/` is on sys.path).
"""
from __future__ import annotations

import psycopg2

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def admin_sql(*statements: str) -> None:
    """Run statements on the `postgres` maintenance database in autocommit (CREATE/DROP DATABASE)."""
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()
