"""In-process profile of the labeling hot path: CPU ms and queries per label (next → submit).

Not a test: it prints figures. Requests go straight into Django's WSGI handler (what gunicorn
calls: the real URL conf, middleware and DRF views, token auth, persistent connection) against a
scratch PostgreSQL database (dropped and migrated on each run), so the figures are the server's
Python CPU (time.process_time, immune to a busy machine's wall clock) without HTTP parsing, plus,
separately, PostgreSQL's own CPU per label read from the backend process (/proc).

    .venv/bin/python bench/hotpath_profile.py                   # 300 labels by 4 labelers
    .venv/bin/python bench/hotpath_profile.py --cprofile 25     # and the top 25 functions
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

from _pg import PG, admin_sql

ROOT = Path(__file__).resolve().parent.parent


def _backend_cpu_s(pid: int) -> float:
    """utime + stime of a PostgreSQL backend (same machine), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="rlhf_hotpath_prof")
    parser.add_argument("--labels", type=int, default=300, help="labels measured (after a warm-up of 40)")
    parser.add_argument("--labelers", type=int, default=4)
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative or tottime")
    parser.add_argument("--keep-db", action="store_true", help="leave the scratch database for a look with psql")
    parser.add_argument("--cprofile", type=int, default=0, help="print the top N functions by cumulative time")
    args = parser.parse_args()

    admin_sql(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)", f"CREATE DATABASE {args.db}")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{args.db}?conn_max_age=600",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "testserver",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "RLHF_SKIP_BOOTSTRAP": "1",
        "LOG_LEVEL": "WARNING",
    })
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token

    from labeling.roles import CONTRACTOR, roles_ensure
    from labeling.services import instructions_acknowledge, instructions_publish
    from tests.factories import ProjectFactory, UserFactory, make_comparison

    call_command("migrate", verbosity=0)
    roles_ensure()
    cycles = args.labels + 40
    project = ProjectFactory(k=4, calibration_share=0.15, labels_per_comparison=args.labelers)
    instructions = instructions_publish(project=project, body="Pick the best.")
    for i in range((cycles + args.labelers) // args.labelers + 5):
        make_comparison(project, is_calibration=i % 10 == 0)
    clients = []
    for i in range(args.labelers):
        user = UserFactory(username=f"prof{i}", role=CONTRACTOR)
        instructions_acknowledge(instructions=instructions, user=user)
        clients.append("Token " + Token.objects.create(user=user).key)
    handler = WSGIHandler()

    def post(authorization: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": authorization,
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        status = []
        result = handler(environ, lambda s, headers, exc_info=None: status.append(int(s.split()[0])))
        content = b"".join(result)
        result.close()  # request_finished, as a server sends it
        return status[0], content
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]

    def cycle(client) -> None:
        status, content = post(client, f"/api/assignments/next/{project.slug}/")
        assert status == 200, (status, content)
        status, content = post(client, f"/api/assignments/{json.loads(content)['id']}/label/",
                               b'{"position": 1, "duration_ms": 900}')
        assert status == 201, (status, content)

    for i in range(40):
        cycle(clients[i % len(clients)])
    profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU, not waits
    with CaptureQueriesContext(connection) as queries:
        pg0, t0 = _backend_cpu_s(backend), time.process_time()
        if profiler:
            profiler.enable()
        for i in range(args.labels):
            cycle(clients[i % len(clients)])
        if profiler:
            profiler.disable()
        python_s, pg_s = time.process_time() - t0, _backend_cpu_s(backend) - pg0
    # CaptureQueriesContext's own bookkeeping is inside the Python figure (a few µs a query).
    print(f"labels: {args.labels}  labelers: {args.labelers}")
    print(f"python CPU per label: {python_s / args.labels * 1000:.2f} ms")
    print(f"postgres CPU per label: {pg_s / args.labels * 1000:.2f} ms")
    print(f"queries per label: {len(queries) / args.labels:.2f}")
    if profiler:
        stats = pstats.Stats(profiler).sort_stats(args.sort)
        stats.print_stats(args.cprofile)
        stats.print_callees("label_submit|comparison_next_for_labeler|api.py.*post")
    connection.close()
    if not args.keep_db:
        admin_sql(f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")


if __name__ == "__main__":
    main()
