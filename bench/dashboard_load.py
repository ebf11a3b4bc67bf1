"""Server time of the researcher dashboards with 100,000 labels from 80 labelers (PostgreSQL).

Not a test: it prints figures. It migrates a template database (`rlhf_dashbench_tpl`), clones it
into a fresh `rlhf_dashbench` (both dropped and recreated: never point it at a database you care
about), bulk-loads one project with SQL, then requests each page in-process through Django's test
client (no network, no gunicorn) and prints the first (cold) time and the median of the next
--repeat requests:

    .venv/bin/python bench/dashboard_load.py
    .venv/bin/python bench/dashboard_load.py --labels 100000 --labelers 80 --repeat 7

Workload: K=4; --labels / 2 comparisons, each answered by two different labelers (about 3% skips,
1% flagged); every 10th comparison is in the calibration slice and also has two researchers'
labels (so the table holds 10% more labels than --labels); labels spread over 60 days. Sample
texts come from a 300-word vocabulary and one sample in four copies a span of its context, so
the copy and length detectors have work to do.

The SQL load writes comparisons around the services, so their text figures (the length, copy
and too-fast detectors' inputs, `Comparison.length_top`/`copy_top`/`text_chars`) are then computed
with `comparisons_text_figures_fill`, as comparison_create and the imports do at write time; its
time is printed apart.

Timed: the overview (`/projects/<slug>/dashboard/`), the labeler table
(`/projects/<slug>/dashboard/labelers/`), its CSV, and one labeler's drill-down. First, each page
alone in a fresh process (its first request: a worker that just started, nothing kept), once with
no shared snapshot of the label columns (the `dashboard` cache cleared: the process reads every
label row, one binary COPY on PostgreSQL, and shares a snapshot) and once with the snapshot an
earlier process shared; then all pages in one process, the first request and the median of the
next --repeat. A process keeps the columns it read, and later requests check them with one
aggregate query and fetch only newer labels. The snapshots go to the settings' `dashboard` cache
(files under var/cache/dashboard unless DASHBOARD_CACHE_URL says otherwise).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from _pg import PG, admin_sql, project_insert

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "rlhf_dashbench_tpl"
DB = "rlhf_dashbench"
SLUG = "dash-bench"
K = 4


def _env(db: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "RLHF_SKIP_BOOTSTRAP": "1",
        "LOG_LEVEL": "WARNING",
    }


def database_prepare() -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_env(TEMPLATE_DB), check=True)
    admin_sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", f"CREATE DATABASE {DB} TEMPLATE {TEMPLATE_DB}")


# Python fills seed and n; the SQL then goes through psycopg2's formatting, hence %%%% → %% → %.
WORDS = "(SELECT string_agg('w' || ((%(seed)s * 7919 + g * 104729) %%%% 300), ' ') FROM generate_series(1, %(n)s) g)"


def database_load(*, labels: int, labelers: int) -> None:
    """One project, its comparisons, 80 labelers' and 2 researchers' labels, all with generate_series."""
    comparisons = labels // 2
    conn = psycopg2.connect(dbname=DB, **PG)
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")  # consistent rows; skip per-row FK triggers
    project = project_insert(cur, name="Dashboard bench", slug=SLUG, k=K, labels_wanted=4, calibration_share=0.1)
    cur.execute("INSERT INTO labeling_instructions (project_id, version, body, created_at) VALUES (%s, 1, 'Pick', now())"
                " RETURNING id", (project,))
    (instructions,) = cur.fetchone()
    cur.execute(
        "INSERT INTO labeling_query (project_id, context, reference, external_id, split, created_at) "
        "SELECT %(p)s, 'Context ' || i || ': ' || " + WORDS % {"seed": "i", "n": "40 + i %% 30"} + ", '', '', 'train', now() "
        "FROM generate_series(1, %(n)s) i",
        {"p": project, "n": comparisons},
    )
    cur.execute(
        "INSERT INTO labeling_sample (query_id, text, tokens, source, generation_params, created_at) "
        "SELECT q.id, ' ' || CASE WHEN p = q.id %% 4 THEN substr(q.context, 12, (30 + q.id %% 90)::int) || ' ' ELSE '' END || "
        + WORDS % {"seed": "q.id * 5 + p", "n": "6 + (q.id + p * 7) %% 25"}
        + ", NULL, 'policy:base', '{}', now() FROM labeling_query q CROSS JOIN generate_series(0, 3) p ORDER BY q.id, p",
        {},
    )
    cur.execute(
        """INSERT INTO labeling_comparison (project_id, query_id, labels_wanted, label_count, open_slots,
               is_calibration, status, batch, external_id, source_run_id, created_at)
           SELECT %s, q.id, 4, 0, 0, q.id %% 10 = 0, 'active', 'bench', '', NULL, now() - interval '61 days'
           FROM labeling_query q WHERE q.project_id = %s ORDER BY q.id""",
        (project, project),
    )
    cur.execute(
        """INSERT INTO labeling_comparisonsample (comparison_id, sample_id, position, sample_source, sample_text_length)
           SELECT c.id, s.id, s.position, s.source, s.text_length FROM labeling_comparison c
           JOIN (SELECT id, query_id, source, text_length,
                        row_number() OVER (PARTITION BY query_id ORDER BY id) - 1 AS position
                 FROM labeling_sample) s ON s.query_id = c.query_id"""
    )
    cur.execute(
        """INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
               is_staff, is_active, date_joined)
           SELECT '!', NULL, false, name, '', '', '', false, true, now()
           FROM (SELECT 'dash-l' || i AS name FROM generate_series(0, %s - 1) i
                 UNION ALL SELECT 'dash-r' || i FROM generate_series(0, 1) i) n""",
        (labelers,),
    )
    cur.execute("""INSERT INTO auth_user_groups (user_id, group_id)
                   SELECT u.id, g.id FROM auth_user u, auth_group g
                   WHERE (u.username LIKE 'dash-l%%' AND g.name = 'contractor')
                      OR (u.username LIKE 'dash-r%%' AND g.name = 'researcher')""", {})
    # Who answers what: labelers a = i mod L and b = (i + 1 + i mod (L−1)) mod L (never a); researchers
    # r0 and r1 on the calibration slice.
    cur.execute(
        """CREATE TEMP TABLE who AS
           SELECT c.id AS comparison_id, u.id AS user_id, c.is_calibration, row_number() OVER () AS n
           FROM (SELECT id, is_calibration, row_number() OVER (ORDER BY id) - 1 AS i FROM labeling_comparison) c
           JOIN LATERAL (VALUES ('dash-l' || (c.i %% %(L)s)), ('dash-l' || ((c.i + 1 + c.i %% (%(L)s - 1)) %% %(L)s)),
                                (CASE WHEN c.is_calibration THEN 'dash-r0' END),
                                (CASE WHEN c.is_calibration THEN 'dash-r1' END)) v(name) ON v.name IS NOT NULL
           JOIN auth_user u ON u.username = v.name""",
        {"L": labelers},
    )
    cur.execute(
        """INSERT INTO labeling_assignment (comparison_id, labeler_id, display_order, leased_at, expires_at, state)
           SELECT comparison_id, user_id, (ARRAY['[0,1,2,3]','[3,2,1,0]','[1,3,0,2]','[2,0,3,1]'])[1 + n %% 4]::jsonb,
                  now() - (n %% 86400) * interval '60 seconds', now(), 'submitted' FROM who ORDER BY n""",
        {},
    )
    cur.execute(
        """INSERT INTO labeling_label (assignment_id, comparison_id, labeler_id, chosen_index, display_position, unsure,
               skipped, skip_reason, duration_ms, instructions_id, created_at)
           SELECT a.id, a.comparison_id, a.labeler_id,
                  CASE WHEN r < 0.03 THEN NULL ELSE (a.display_order ->> p)::int END, CASE WHEN r < 0.03 THEN NULL ELSE p END,
                  random() < 0.05, r < 0.03,
                  CASE WHEN r < 0.03 THEN 'unclear' ELSE '' END, 3000 + (random() * 40000)::int, %s, a.leased_at
           FROM (SELECT *, random() AS r, floor(random() * 4)::int AS p FROM labeling_assignment) a ORDER BY a.id""",
        (instructions,),
    )
    cur.execute("""UPDATE labeling_comparison c SET label_count = l.n
                   FROM (SELECT comparison_id, count(*) n FROM labeling_label WHERE NOT skipped GROUP BY 1) l
                   WHERE l.comparison_id = c.id""")
    cur.execute("""INSERT INTO labeling_sampleflag (label_id, sample_id, note, suggested_correction, created_at)
                   SELECT l.id, cs.sample_id, 'odd', '', now() FROM labeling_label l
                   JOIN labeling_comparisonsample cs ON cs.comparison_id = l.comparison_id AND cs.position = 0
                   WHERE l.id %% 100 = 0""", {})
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")
    cur.execute("SELECT count(*), count(*) FILTER (WHERE labeler_id IN (SELECT id FROM auth_user WHERE username LIKE "
                "'dash-l%%')) FROM labeling_label", {})
    total, by_labelers = cur.fetchone()
    conn.close()
    print(f"loaded: {comparisons} comparisons, {total} labels ({by_labelers} by {labelers} labelers, "
          f"{total - by_labelers} by 2 researchers on the calibration slice)")


def _django_setup(*, as_server: bool = False) -> None:
    """Django set up; `as_server`: by importing config.wsgi, as a gunicorn or runserver worker starts
    (its warm-up compiles the templates and loads the URLconf before the first request)."""
    os.environ.update(_env(DB))
    sys.path.insert(0, str(ROOT))
    if as_server:
        import config.wsgi  # noqa: F401
        return
    import django

    django.setup()


def figures_fill() -> None:
    """What the write paths store per comparison, computed for the SQL-loaded rows."""
    _django_setup()
    from labeling.models import Comparison
    from labeling.services import comparisons_text_figures_fill

    start = time.perf_counter()
    ids = list(Comparison.objects.filter(project__slug=SLUG).values_list("id", flat=True))
    written = comparisons_text_figures_fill(comparison_ids=ids)
    print(f"text figures: {written} comparisons in {time.perf_counter() - start:.1f} s "
          f"(comparison_create and the imports do this as they write)")
    conn = psycopg2.connect(dbname=DB, **PG)
    conn.autocommit = True
    conn.cursor().execute("VACUUM ANALYZE labeling_comparison")  # the update left every row twice (autovacuum's job)
    conn.close()


PAGES = ("overview", "labeler table", "labeler table CSV", "labeler drill-down")


def measure(repeat: int, pages: tuple[str, ...] = PAGES, *, no_snapshot: bool = False) -> None:
    """In-process requests as a researcher: first (cold) and median of `repeat` more, server time only.
    `no_snapshot`: first drop the shared snapshots of label columns (as before any worker read them)."""
    _django_setup(as_server=True)
    if no_snapshot:
        from labeling.selectors.quality import dashboard_cache_clear

        dashboard_cache_clear()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    researcher = get_user_model().objects.get(username="dash-r0")
    labeler = get_user_model().objects.get(username="dash-l7")
    client = Client()
    client.force_login(researcher)
    urls = {
        "overview": reverse("dashboard-project", kwargs={"slug": SLUG}),
        "labeler table": reverse("dashboard-labelers", kwargs={"slug": SLUG}),
        "labeler table CSV": reverse("dashboard-labelers", kwargs={"slug": SLUG}) + "?format=csv",
        "labeler drill-down": reverse("dashboard-labeler", kwargs={"slug": SLUG, "user_id": labeler.id}),
    }
    for name in pages:
        times = []
        for _ in range(repeat + 1):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(urls[name])
                times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (urls[name], response.status_code)
        later = (f" · median of next {repeat} {statistics.median(times[1:]):7.0f} ms (min {min(times[1:]):.0f}, "
                 f"max {max(times[1:]):.0f})") if repeat else ""
        print(f"{name:20s} first {times[0]:7.0f} ms{later} · {len(queries.captured_queries)} queries · "
              f"{len(response.content) // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=100_000, help="labels by labelers (researchers add 10%%)")
    parser.add_argument("--labelers", type=int, default=80)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-load", action="store_true", help="reuse the loaded rlhf_dashbench")
    parser.add_argument("--page", choices=PAGES, help=argparse.SUPPRESS)  # one cold page (a subprocess of main)
    parser.add_argument("--no-snapshot", action="store_true", help=argparse.SUPPRESS)  # with --page
    parser.add_argument("--fill", action="store_true", help=argparse.SUPPRESS)  # the text figures (a subprocess)
    args = parser.parse_args()
    if args.fill:
        return figures_fill()
    if args.page:
        return measure(0, (args.page,), no_snapshot=args.no_snapshot)
    print(f"cpus: {os.cpu_count()} · load average: {os.getloadavg()}")
    if not args.skip_load:
        start = time.perf_counter()
        database_prepare()
        database_load(labels=args.labels, labelers=args.labelers)
        print(f"load took {time.perf_counter() - start:.0f} s")
        subprocess.run([sys.executable, __file__, "--fill"], check=True)
    print("each page alone, in a fresh process, no snapshot shared yet (reads every label row):")
    for page in PAGES:
        subprocess.run([sys.executable, __file__, "--page", page, "--no-snapshot"], check=True)
    print("each page alone, in a fresh process, with the snapshot an earlier process shared:")
    for page in PAGES:
        subprocess.run([sys.executable, __file__, "--page", page], check=True)
    print(f"all pages in one process, then {args.repeat} more requests each:")
    measure(args.repeat)


if __name__ == "__main__":
    main()
