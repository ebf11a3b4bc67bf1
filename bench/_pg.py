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


def project_insert(cur, *, name: str, slug: str, k: int, labels_wanted: int, calibration_share: float,
                   calibration_labels_wanted: int = 10) -> int:
    """One labeling project row by SQL (the benches bulk-load around it); returns its id. Every
    NOT NULL column without a database default is here: a new one breaks both benches at once."""
    cur.execute(
        """INSERT INTO labeling_project (name, slug, description, task_kind, k, labels_per_comparison,
               calibration_share, calibration_labels_wanted, is_active, created_at, training_settings)
           VALUES (%s, %s, '', 'continuation', %s, %s, %s, %s, true, now(), '{}') RETURNING id""",
        (name, slug, k, labels_wanted, calibration_share, calibration_labels_wanted),
    )
    return cur.fetchone()[0]
