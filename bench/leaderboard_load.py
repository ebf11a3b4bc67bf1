"""Server time of the policies' leaderboard (Bradley–Terry with bootstrap intervals, raw and length-controlled
win rates against the base) with 100,000 labels (PostgreSQL).

Not a test: it prints figures. It migrates a template database (`rlhf_lbbench_tpl`), clones it into a
fresh `rlhf_lbbench` (both dropped and recreated: never point it at a database you care about),
bulk-loads one project with SQL, then times `training.selectors.project_leaderboard` in-process
(the first call and the median of the next --repeat), cold (nothing kept anywhere: the comparisons' samples
read again from the database), a process's first call that finds the snapshot an earlier process shared,
and warm (a process keeps the samples of the comparisons it read and reads only the labels, one check and
newer comparisons), its reads alone, the per-round sample-to-label
latency (`round_label_latencies`) and the whole rounds-and-runs page:

    .venv/bin/python bench/leaderboard_load.py
    .venv/bin/python bench/leaderboard_load.py --labels 100000 --rounds 10 --repeat 7

Workload: K=4; --labels / 2 comparisons over --rounds rounds, each published by its round's sample
run and answered by two of 80 labelers (3% skips, 5% unsure); the samples of round r are
[run<r>-step100, base, run<r>-step100, X] with X the reference, the previous round's checkpoint or
a second base sample in turn (so within-policy pairs occur), texts of varied length (later
checkpoints write longer ones); labelers favour later checkpoints and longer texts. An open andon
pull withdraws 1% of the comparisons (their labels are left out). Labels arrive 1–120 minutes
after their comparison is published.
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
TEMPLATE_DB = "rlhf_lbbench_tpl"
DB = "rlhf_lbbench"
SLUG = "leaderboard-bench"
BASE = "baseline:base-policy"  # training.models.BASE_POLICY_SOURCE (not imported: Django is not set up yet)


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


def database_load(*, labels: int, rounds: int, labelers: int = 80) -> None:
    """One project, its rounds and sample runs, comparisons, samples and labels, all with generate_series."""
    comparisons = labels // 2
    conn = psycopg2.connect(dbname=DB, **PG)
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")  # consistent rows; skip per-row FK triggers
    project = project_insert(cur, name="Leaderboard bench", slug=SLUG, k=4, labels_wanted=2, calibration_share=0)
    cur.execute("""INSERT INTO training_round (project_id, number, label_snapshot, sweep, status, created_at)
                   SELECT %s, r, '{}', '{}', 'finished', now() - (%s - r + 1) * interval '1 day'
                   FROM generate_series(1, %s) r""", (project, rounds, rounds))
    cur.execute("""INSERT INTO training_trainingrun (project_id, round_id, kind, status, config, product, report, seed,
                       base_model, step, total_steps, lease_owner, attempts, max_attempts, hostname, stop_reason,
                       error, created_at)
                   SELECT project_id, id, 'sample', 'finished', '{}', '{}', '{}', 0, 'tiny', 0, 0, '', 0, 3, '', '',
                          '', created_at FROM training_round WHERE project_id = %s""", (project,))
    # Comparison i belongs to round 1 + i mod R; its run is that round's sample run.
    cur.execute("""CREATE TEMP TABLE c AS
                   SELECT i, 1 + i %% %(R)s AS r, (i / %(R)s) %% 3 AS x FROM generate_series(0, %(n)s - 1) i""",
                {"R": rounds, "n": comparisons})
    cur.execute("""INSERT INTO labeling_query (project_id, context, reference, external_id, split, created_at)
                   SELECT %s, 'Context ' || i, '', 'q' || i, 'train', now() FROM c ORDER BY i""", (project,))
    cur.execute("""INSERT INTO labeling_comparison (project_id, query_id, labels_wanted, label_count, open_slots,
                       is_calibration, status, batch, external_id, source_run_id, created_at)
                   SELECT %(p)s, q.id, 2, 2, 0, false, 'active', 'bench', q.external_id, run.id,
                          now() - (%(R)s - c.r + 1) * interval '1 day' + (c.i %% 1000) * interval '1 second'
                   FROM c JOIN labeling_query q ON q.project_id = %(p)s AND q.external_id = 'q' || c.i
                   JOIN training_round rd ON rd.project_id = %(p)s AND rd.number = c.r
                   JOIN training_trainingrun run ON run.round_id = rd.id ORDER BY c.i""",
                {"p": project, "R": rounds})
    # Sources by position: checkpoint, base, checkpoint, X (reference / previous checkpoint / base).
    cur.execute(
        """CREATE TEMP TABLE s AS
           SELECT cmp.id AS comparison_id, cmp.query_id, pos,
                  CASE WHEN pos IN (0, 2) THEN 'run' || c.r || '-step100'
                       WHEN pos = 1 THEN %(base)s
                       WHEN c.x = 0 THEN 'reference'
                       WHEN c.x = 1 AND c.r > 1 THEN 'run' || (c.r - 1) || '-step100'
                       ELSE %(base)s END AS source,
                  10 + (c.i * 7 + pos * 13) %% 60 + CASE WHEN pos IN (0, 2) THEN 3 * c.r ELSE 0 END AS words
           FROM c JOIN labeling_comparison cmp ON cmp.external_id = 'q' || c.i AND cmp.project_id = %(p)s
           CROSS JOIN generate_series(0, 3) pos""",
        {"base": BASE, "p": project})
    cur.execute("CREATE INDEX ON s (comparison_id)")
    cur.execute("""INSERT INTO labeling_sample (query_id, text, tokens, source, generation_params, created_at)
                   SELECT query_id, repeat('word ', words), NULL, source, '{}', now() FROM s
                   ORDER BY comparison_id, pos""")
    cur.execute("""INSERT INTO labeling_comparisonsample (comparison_id, sample_id, position, sample_source,
                                                         sample_text_length)
                   SELECT cmp.id, sm.id, row_number() OVER (PARTITION BY cmp.id ORDER BY sm.id) - 1, sm.source,
                          sm.text_length
                   FROM labeling_comparison cmp JOIN labeling_sample sm ON sm.query_id = cmp.query_id
                   WHERE cmp.project_id = %s""", (project,))
    cur.execute("""INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
                       is_staff, is_active, date_joined)
                   SELECT '!', NULL, false, name, '', '', '', false, true, now()
                   FROM (SELECT 'lb-l' || i AS name FROM generate_series(0, %s - 1) i UNION ALL SELECT 'lb-r0') n""",
                (labelers,))
    cur.execute("""INSERT INTO auth_user_groups (user_id, group_id)
                   SELECT u.id, g.id FROM auth_user u, auth_group g
                   WHERE (u.username LIKE 'lb-l%%' AND g.name = 'contractor')
                      OR (u.username = 'lb-r0' AND g.name = 'researcher')""", {})
    cur.execute(
        """CREATE TEMP TABLE who AS
           SELECT cmp.id AS comparison_id, cmp.created_at, u.id AS user_id, row_number() OVER () AS n
           FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) - 1 AS i FROM labeling_comparison
                 WHERE project_id = %(p)s) cmp
           JOIN LATERAL (VALUES ('lb-l' || (cmp.i %% %(L)s)), ('lb-l' || ((cmp.i + 1 + cmp.i %% (%(L)s - 1)) %% %(L)s)))
                v(name) ON true
           JOIN auth_user u ON u.username = v.name""",
        {"p": project, "L": labelers})
    cur.execute("""INSERT INTO labeling_assignment (comparison_id, labeler_id, display_order, leased_at, expires_at,
                       state)
                   SELECT comparison_id, user_id, '[0,1,2,3]'::jsonb, created_at, created_at, 'submitted'
                   FROM who ORDER BY n""")
    # The chosen sample: softmax over (round number of a checkpoint × 0.15 + 0.01 × words), drawn by the
    # Gumbel trick per label.
    cur.execute(
        """INSERT INTO labeling_label (assignment_id, comparison_id, labeler_id, chosen_index, display_position, unsure,
               skipped, skip_reason, duration_ms, instructions_id, created_at)
           SELECT a.id, a.comparison_id, a.labeler_id, CASE WHEN a.r < 0.03 THEN NULL ELSE pick.pos END,
                  CASE WHEN a.r < 0.03 THEN NULL ELSE pick.pos END, random() < 0.05, a.r < 0.03,
                  CASE WHEN a.r < 0.03 THEN 'unclear' ELSE '' END, 3000 + (random() * 40000)::int, NULL,
                  a.leased_at + (1 + random() * 119) * interval '1 minute'
           FROM (SELECT *, random() AS r FROM labeling_assignment) a
           JOIN LATERAL (SELECT s.pos FROM s WHERE s.comparison_id = a.comparison_id
                         ORDER BY 0.15 * coalesce(substring(s.source from '^run(\\d+)-')::int, 0) + 0.01 * s.words
                                  - ln(-ln(greatest(random(), 1e-12))) DESC LIMIT 1) pick ON true
           ORDER BY a.id""")
    cur.execute("""INSERT INTO training_andonpull (run_id, source, exclude_labels, role, tripwire, reason, created_at,
                       resolution, resolution_note)
                   SELECT id, '', false, 'researcher', '', 'bench', now(), '', '' FROM training_trainingrun
                   WHERE project_id = %s ORDER BY id LIMIT 1 RETURNING id""", (project,))
    (pull,) = cur.fetchone()
    cur.execute("""INSERT INTO training_andonpull_withdrawn (andonpull_id, comparison_id)
                   SELECT %s, id FROM labeling_comparison WHERE project_id = %s AND id %% 100 = 0""", (pull, project))
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")
    cur.execute("SELECT count(*), count(*) FILTER (WHERE NOT skipped) FROM labeling_label")
    total, answered = cur.fetchone()
    conn.close()
    print(f"loaded: {comparisons} comparisons in {rounds} rounds, {total} labels ({answered} answered)")


def measure(repeat: int, draws: int) -> None:
    os.environ.update(_env(DB))
    sys.path.insert(0, str(ROOT))
    import config.wsgi  # noqa: F401  (as a worker starts: settings, apps, URLconf)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from labeling.models import Project
    from training.selectors import leaderboard_cache_clear, project_leaderboard, round_label_latencies
    from training.selectors.leaderboard import _answers, _project_entries

    project = Project.objects.get(slug=SLUG)

    def timed(name: str, call, times: int) -> object:
        spent, result = [], None
        for _ in range(times + 1):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                result = call()
                spent.append((time.perf_counter() - start) * 1000)
        later = (f" · median of next {times} {statistics.median(spent[1:]):6.0f} ms (min {min(spent[1:]):.0f}, "
                 f"max {max(spent[1:]):.0f})") if times else ""
        print(f"{name:44s} first {spent[0]:6.0f} ms{later} · {len(queries.captured_queries)} queries")
        return result

    def reads():
        _answers(project)
        _project_entries(project)

    def cold():
        leaderboard_cache_clear()
        return project_leaderboard(project=project, draws=draws)

    def fresh_process():
        leaderboard_cache_clear(shared=False)  # the snapshot an earlier process shared stays
        return project_leaderboard(project=project, draws=draws)

    timed(f"leaderboard + length control, cold ({draws} draws)", cold, repeat)
    timed(f"  first in a process, snapshot shared", fresh_process, repeat)
    board = timed(f"leaderboard + length control, warm ({draws} draws)", lambda: project_leaderboard(
        project=project, draws=draws), repeat)
    timed("  its reads alone, warm", reads, repeat)
    timed("  without the bootstrap (draws=0), warm", lambda: project_leaderboard(project=project, draws=0), repeat)
    latencies = timed("sample-to-label latency per round", lambda: round_label_latencies(project=project), repeat)
    client = Client()
    client.force_login(get_user_model().objects.get(username="lb-r0"))
    url = reverse("training-project-runs", kwargs={"slug": SLUG})
    timed("the whole rounds-and-runs page", lambda: client.get(url), repeat)
    print(f"labels {board.labels}, comparisons {board.comparisons}, outcomes {board.outcomes}, "
          f"within-policy pairs dropped {board.within_policy_pairs}, anchor {board.anchor}, "
          f"length slope {board.length_slope:.3f}")
    for r in board.rows[:5]:
        lc = f"{r.vs_base_lc.value:.3f}" if r.vs_base_lc else "–"
        raw = f"{r.vs_base.value:.3f}" if r.vs_base else "–"
        print(f"  {r.rank}. {r.policy:22s} {r.strength:+.3f} [{r.low:+.3f}, {r.high:+.3f}] · {r.comparisons} "
              f"comparisons · vs base raw {raw}, length-controlled {lc}")
    print("latency (round: median, p90 minutes): " + ", ".join(
        f"{r.round_number}: {r.median_min:.0f}, {r.p90_min:.0f}" for r in latencies[:3]) + " …")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=100_000, help="labels, skips included")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--draws", type=int, default=200, help="bootstrap draws (the page's default: 200)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-load", action="store_true", help="reuse the loaded rlhf_lbbench")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()} · load average: {os.getloadavg()}")
    if not args.skip_load:
        start = time.perf_counter()
        database_prepare()
        database_load(labels=args.labels, rounds=args.rounds)
        print(f"load took {time.perf_counter() - start:.0f} s")
    measure(args.repeat, args.draws)


if __name__ == "__main__":
    main()
