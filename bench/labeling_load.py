"""Load bench of the labeling API: simulated labelers doing next → submit against gunicorn over loopback.

Not a test: it prints figures. Each scale gets a fresh PostgreSQL database cloned from a migrated
template, bulk-loaded with SQL (generate_series), served by gunicorn with token auth:

    .venv/bin/python bench/labeling_load.py                      # 10k comparisons, then 1M in the table
    .venv/bin/python bench/labeling_load.py --skip-million --pace-ms 0   # saturation, small table only

Workload: one project (K=4, --labels-wanted labels per comparison, calibration every 10th
comparison), --labelers contractors with API tokens. Each labeler loops POST next → POST label.
With --pace-ms P a labeler starts one cycle every P ms (so labelers/P·1000 labels/s are offered,
200 labels/s with the defaults); with --pace-ms 0 it never waits (closed loop, saturation).
The million run keeps the same open pool and adds labeled-out history rows (open_slots 0,
lower ids) so the table holds 1,000,000 comparisons; only the table size differs.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg2
from _pg import PG, admin_sql, project_insert
from _proc import port_free, server_stop

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_SUFFIX = "_tpl"  # the migrated template is named after --db, so two benches on one server do not collide
SLUG = "bench"
K = 4


# ---------------------------------------------------------------- database


def _db_url(name: str, conn_max_age: int) -> str:
    return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}?conn_max_age={conn_max_age}"


def _django_env(db: str, conn_max_age: int = 0) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": _db_url(db, conn_max_age),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "RLHF_SKIP_BOOTSTRAP": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def template_migrate(template: str) -> None:
    """A freshly migrated template database; every run clones it (CREATE DATABASE … TEMPLATE)."""
    admin_sql(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)", f"CREATE DATABASE {template}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_django_env(template), check=True)


def database_create(name: str, template: str) -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name} TEMPLATE {template}")


CONTEXT = "Context %s: " + "The quick brown fox jumps over the lazy dog. " * 8
SAMPLE = " and then sample %s of the query happened, " + "word " * 40


def database_load(name: str, *, open_comparisons: int, history: int, labelers: int, labels_wanted: int,
                  calibration_share: float) -> list[str]:
    """Bulk-load the project, queries, samples, comparisons and labelers; returns the API tokens.

    `history` labeled-out comparisons (open_slots 0) get lower ids than the `open_comparisons`
    pool, as on a platform that has been labeling for a while; they reuse the pool's queries.
    """
    conn = psycopg2.connect(dbname=name, **PG)
    cur = conn.cursor()
    # The rows are generated consistent; skipping the per-row foreign-key triggers (Django makes
    # them deferred, so millions of checks would run at COMMIT) cuts the million load to minutes.
    cur.execute("SET session_replication_role = replica")
    project_id = project_insert(cur, name="Bench", slug=SLUG, k=K, labels_wanted=labels_wanted,
                                calibration_share=calibration_share)
    cur.execute(
        """INSERT INTO labeling_query (project_id, context, reference, external_id, split, created_at)
           SELECT %s, format(%s, i), '', '', 'train', now() FROM generate_series(1, %s) i""",
        (project_id, CONTEXT, open_comparisons),
    )
    cur.execute(
        """INSERT INTO labeling_sample (query_id, text, tokens, source, generation_params, created_at)
           SELECT q.id, format(%s, p), NULL, 'policy:base', '{}', now()
           FROM labeling_query q CROSS JOIN generate_series(0, %s) p ORDER BY q.id, p""",
        (SAMPLE, K - 1),
    )
    cur.execute(
        """CREATE TEMP TABLE qrank AS
           SELECT id AS query_id, row_number() OVER (ORDER BY id) - 1 AS rank FROM labeling_query"""
    )
    comparison_sql = """
        INSERT INTO labeling_comparison (project_id, query_id, labels_wanted, label_count, open_slots,
            is_calibration, status, batch, external_id, source_run_id, created_at)
        SELECT %(project)s, q.query_id, %(wanted)s, %(labels)s, %(open)s, i %% 10 = 0, 'active', %(batch)s, '', NULL, now()
        FROM generate_series(0, %(n)s - 1) i JOIN qrank q ON q.rank = i %% %(queries)s ORDER BY i"""
    for batch, n, labels, open_slots in (("history", history, labels_wanted, 0),
                                         ("open", open_comparisons, 0, labels_wanted)):
        if n:
            cur.execute(comparison_sql, {"project": project_id, "wanted": labels_wanted, "labels": labels,
                                         "open": open_slots, "batch": batch, "n": n, "queries": open_comparisons})
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
           SELECT '!', NULL, false, 'bench-' || i, '', '', '', false, true, now() FROM generate_series(1, %s) i""",
        (labelers,),
    )
    cur.execute(
        """INSERT INTO auth_user_groups (user_id, group_id)
           SELECT u.id, g.id FROM auth_user u, auth_group g WHERE u.username LIKE 'bench-%' AND g.name = 'contractor'"""
    )
    cur.execute(
        """INSERT INTO authtoken_token (key, user_id, created)
           SELECT substr(md5(random()::text || id) || md5(random()::text || id), 1, 40), id, now()
           FROM auth_user WHERE username LIKE 'bench-%' RETURNING key"""
    )
    tokens = [row[0] for row in cur.fetchall()]
    conn.commit()
    conn.autocommit = True
    cur.execute("VACUUM ANALYZE")
    conn.close()
    return tokens


def database_check(name: str) -> dict:
    """The invariants: no (comparison, labeler) twice, nobody over its wanted labels, slots add up."""
    conn = psycopg2.connect(dbname=name, **PG)
    cur = conn.cursor()
    figures = {}
    for key, sql in {
        "labels": "SELECT count(*) FROM labeling_label",
        "duplicate_assignments": """SELECT count(*) FROM (SELECT 1 FROM labeling_assignment
                                    GROUP BY comparison_id, labeler_id HAVING count(*) > 1) d""",
        "duplicate_labels": """SELECT count(*) FROM (SELECT 1 FROM labeling_label
                               GROUP BY comparison_id, labeler_id HAVING count(*) > 1) d""",
        "overlabeled_comparisons": """SELECT count(*) FROM (SELECT c.id FROM labeling_comparison c
                                      JOIN labeling_label l ON l.comparison_id = c.id AND NOT l.skipped
                                      GROUP BY c.id, c.labels_wanted HAVING count(*) > c.labels_wanted) o""",
        "overassigned_comparisons": """SELECT count(*) FROM (SELECT c.id FROM labeling_comparison c
                                       JOIN labeling_assignment a ON a.comparison_id = c.id
                                       AND a.state IN ('leased', 'submitted')
                                       GROUP BY c.id, c.labels_wanted HAVING count(*) > c.labels_wanted) o""",
        "slot_mismatches": """SELECT count(*) FROM labeling_comparison c WHERE c.batch = 'open' AND c.open_slots <>
                              c.labels_wanted - c.label_count - (SELECT count(*) FROM labeling_assignment a
                              WHERE a.comparison_id = c.id AND a.state = 'leased')""",
        "comparisons_in_table": "SELECT count(*) FROM labeling_comparison",
    }.items():
        cur.execute(sql)
        figures[key] = cur.fetchone()[0]
    conn.close()
    return figures


# ---------------------------------------------------------------- server



def server_start(db: str, *, port: int, workers: int, threads: int, conn_max_age: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
               "-k", "gthread", "--threads", str(threads), "--backlog", "2048", "--keep-alive", "30",
               "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=_django_env(db, conn_max_age), start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", f"/api/assignments/next/{SLUG}/")  # any answer (401) means it serves
            conn.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    server_stop(server)
    raise RuntimeError("gunicorn did not answer within 60 s")


def cpu_seconds(server: subprocess.Popen) -> dict:
    """CPU seconds used so far by PostgreSQL backends, the gunicorn process group and this client."""
    tick = os.sysconf("SC_CLK_TCK")
    used = Counter()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        pgid, utime, stime = int(fields[2]), int(fields[11]), int(fields[12])
        if comm == "postgres":
            used["postgres"] += (utime + stime) / tick
        elif pgid == server.pid:
            used["gunicorn"] += (utime + stime) / tick
    times = os.times()
    used["client"] = times.user + times.system
    return dict(used)



# ---------------------------------------------------------------- load


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {"next": [], "submit": []}
        self.status = Counter()
        self.errors = Counter()
        self.labels = 0
        self.label_times: list[float] = []
        self.drained = 0


def _post(conn: http.client.HTTPConnection, path: str, token: str, body: dict | None):
    payload = b"" if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn.request("POST", path, body=payload, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def labeler_loop(token: str, *, port: int, end: float, pace: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    time.sleep(rng.random() * max(pace, 0.05))  # spread the first requests
    while time.monotonic() < end:
        cycle_start = time.monotonic()
        try:
            t = time.perf_counter()
            status, body = _post(conn, f"/api/assignments/next/{SLUG}/", token, None)
            next_s = time.perf_counter() - t
            with tally.lock:
                tally.latency["next"].append((t, next_s))
                tally.status[f"next {status}"] += 1
            if status == 204:
                with tally.lock:
                    tally.drained += 1
                return
            if status != 200:
                continue
            assignment_id = json.loads(body)["id"]
            answer = {"position": rng.randrange(K), "duration_ms": rng.randrange(500, 20000)}
            t = time.perf_counter()
            status, _ = _post(conn, f"/api/assignments/{assignment_id}/label/", token, answer)
            submit_s = time.perf_counter() - t
            with tally.lock:
                tally.latency["submit"].append((t, submit_s))
                tally.status[f"submit {status}"] += 1
                tally.labels += status == 201
                if status == 201:
                    tally.label_times.append(time.perf_counter())
        except (OSError, http.client.HTTPException) as error:
            with tally.lock:
                tally.errors[type(error).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(max(0.0, pace - (time.monotonic() - cycle_start)))
    conn.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load_run(tokens: list[str], *, port: int, duration: float, pace: float, warmup: float) -> dict:
    """Labels/s and latency over the window from `warmup` seconds after the start (connections
    opened, caches and plans warm) to the end of `duration` (the cycles still in flight then are
    left out); the p99 over every request is kept as `p99_all_ms`."""
    tally = Tally()
    start, started = time.monotonic(), time.perf_counter()
    measured_from, measured_to = started + warmup, started + duration
    end = start + duration
    threads = [
        threading.Thread(target=labeler_loop, args=(token,),
                         kwargs={"port": port, "end": end, "pace": pace, "tally": tally, "seed": i}, daemon=True)
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 60)
    elapsed = time.monotonic() - start
    window = max(duration - warmup, 1e-9)
    measured_labels = sum(measured_from <= t < measured_to for t in tally.label_times)
    result = {"elapsed_s": elapsed, "warmup_s": warmup, "window_s": window, "labels": tally.labels,
              "labels_per_s": measured_labels / window,
              "status": dict(tally.status), "client_errors": dict(tally.errors), "drained_labelers": tally.drained,
              "server_5xx": sum(n for key, n in tally.status.items() if key.split()[1].startswith("5"))}
    for op, samples in tally.latency.items():
        values = [seconds for t, seconds in samples if measured_from <= t < measured_to]
        result[op] = {"n": len(values), "p50_ms": _pct(values, 0.50), "p95_ms": _pct(values, 0.95),
                      "p99_ms": _pct(values, 0.99), "mean_ms": statistics.fmean(values) * 1000 if values else 0.0,
                      "p99_all_ms": _pct([seconds for _, seconds in samples], 0.99)}
    return result


# ---------------------------------------------------------------- main


def scale_run(args, *, total: int) -> dict:
    db = args.db
    history = max(0, total - args.comparisons)
    print(f"\n=== {total:,} comparisons in the table ({args.comparisons:,} open, {history:,} labeled-out history) ===",
          flush=True)
    t = time.monotonic()
    database_create(db, args.db + TEMPLATE_SUFFIX)
    tokens = database_load(db, open_comparisons=args.comparisons, history=history, labelers=args.labelers,
                           labels_wanted=args.labels_wanted, calibration_share=args.calibration_share)
    print(f"loaded in {time.monotonic() - t:.1f} s", flush=True)
    port = port_free()
    server = server_start(db, port=port, workers=args.workers, threads=args.threads, conn_max_age=args.conn_max_age)
    try:
        cpu_before = cpu_seconds(server)
        result = load_run(tokens, port=port, duration=args.duration, pace=args.pace_ms / 1000, warmup=args.warmup)
        cpu_after = cpu_seconds(server)
    finally:
        server_stop(server)
    result["cpu_s"] = {key: round(cpu_after[key] - cpu_before.get(key, 0), 1) for key in cpu_after}
    result["checks"] = database_check(db)
    _print(result)
    return result


def _print(result: dict) -> None:
    print(f"labels: {result['labels']:,} in {result['elapsed_s']:.1f} s; {result['labels_per_s']:.1f} labels/s in the"
          f" {result['window_s']:.0f} s after the {result['warmup_s']:.0f} s warm-up"
          f"  (labelers who drained the pool: {result['drained_labelers']})")
    for op in ("next", "submit"):
        r = result[op]
        print(f"{op:>6}: n={r['n']:,}  p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
              f"  mean {r['mean_ms']:.1f} ms  (p99 with the warm-up {r['p99_all_ms']:.1f} ms)")
    print(f"status: {result['status']}  client errors: {result['client_errors']}  5xx: {result['server_5xx']}")
    cpu = result["cpu_s"]
    per_label = {key: f"{value / max(result['labels'], 1) * 1000:.1f} ms" for key, value in cpu.items()}
    print(f"cpu seconds: {cpu}  per label: {per_label}")
    print(f"checks: {result['checks']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comparisons", type=int, default=10_000, help="open comparisons in the pool")
    parser.add_argument("--labelers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per scale")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="first seconds of each scale left out of labels/s and latency (printed apart)")
    parser.add_argument("--pace-ms", type=float, default=1000.0,
                        help="one next→submit cycle per labeler every PACE ms; 0 = no waiting (saturation)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (one per core measured best)")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker")
    parser.add_argument("--conn-max-age", type=int, default=60, help="Django CONN_MAX_AGE for the server (0 = per request)")
    parser.add_argument("--labels-wanted", type=int, default=2)
    parser.add_argument("--calibration-share", type=float, default=0.15)
    parser.add_argument("--million", type=int, default=1_000_000, help="table size of the second run")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--db", default="rlhf_bench")
    args = parser.parse_args()

    print(f"bench: {args.labelers} labelers, pace {args.pace_ms:.0f} ms, {args.duration:.0f} s per scale, gunicorn "
          f"{args.workers}x{args.threads} gthread, CONN_MAX_AGE={args.conn_max_age}, K={K}, "
          f"labels wanted {args.labels_wanted}, {os.cpu_count()} CPUs", flush=True)
    template_migrate(args.db + TEMPLATE_SUFFIX)
    small = scale_run(args, total=args.comparisons)
    if args.skip_million:
        return
    large = scale_run(args, total=args.million)
    print("\n=== p99 growth from small to large table ===")
    for op in ("next", "submit"):
        before, after = small[op]["p99_ms"], large[op]["p99_ms"]
        growth = (after - before) / before * 100
        verdict = "GREW MORE THAN 20%" if growth > 20 else "within 20%"
        print(f"{op:>6}: p99 {before:.1f} ms → {after:.1f} ms ({growth:+.0f}%): {verdict}")


if __name__ == "__main__":
    main()
