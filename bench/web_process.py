"""What one web process costs: a gunicorn sync worker's start time and resident memory.

Not a test: it prints figures. Each run starts `gunicorn config.wsgi` (one sync worker, a free loopback
port, `config.settings.base` as config/wsgi.py defaults to, `DEBUG=0`, SQLite in a throwaway folder
migrated once), times from spawn until `GET /accounts/login/` first answers 200, then reads the
worker's CPU time, its VmRSS from /proc and whether torch or transformers are mapped into it:

    .venv/bin/python bench/web_process.py                    # 5 runs of this tree
    .venv/bin/python bench/web_process.py --tree /tmp/before --runs 5   # another checkout (git archive)

The start time covers gunicorn's master, the worker's fork, its import of the app (settings, URLconf,
every view module) and config/warmup.py (every template compiled), as a real deploy or restart pays it.
"""
from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _proc import port_free, server_stop

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("libtorch", "/torch/", "/transformers/")  # in /proc/<pid>/maps when either library was imported


def _env(tree: Path, var_dir: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "RLHF_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "RLHF_SKIP_BOOTSTRAP": "1",
        "LOG_LEVEL": "WARNING",
    }



def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used: steadier than wall time on a shared machine."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _heavy_mapped(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return any(marker in maps for marker in HEAVY)


def _login_status(port: int) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/accounts/login/")
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def one_run(tree: Path, env: dict, timeout: float) -> dict:
    """Spawn gunicorn, wait for the first 200 from the login page, measure the worker, stop it."""
    port = port_free()
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
               "-k", "sync", "--log-level", "warning"]
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=tree, env=env, start_new_session=True)
    try:
        status = None
        while status != 200:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"no 200 from /accounts/login/ within {timeout:.0f} s (last: {status})")
            time.sleep(0.02)
            status = _login_status(port)
        seconds = time.perf_counter() - start
        workers = _children(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        return {"seconds": seconds, "cpu": _cpu_seconds(workers[0]), "rss_mib": _rss_mib(workers[0]),
                "master_rss_mib": _rss_mib(server.pid), "heavy": _heavy_mapped(workers[0])}
    finally:
        server_stop(server)


def _spread(values: list[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to serve (default: this one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for a run's first 200")
    args = parser.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory(prefix="web-process-bench-") as folder:
        env = _env(tree, Path(folder))
        (Path(folder) / "static").mkdir()  # STATIC_ROOT: WhiteNoise warns in every worker without it
        subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd=tree, env=env,
                       check=True)
        print(f"bench: {tree}, {args.runs} runs, gunicorn 1 sync worker, config.settings.base, SQLite; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        runs = []
        for n in range(1, args.runs + 1):
            run = one_run(tree, env, args.timeout)
            runs.append(run)
            print(f"  run {n}: first 200 after {run['seconds'] * 1000:.0f} ms (worker CPU {run['cpu'] * 1000:.0f} ms), "
                  f"worker VmRSS {run['rss_mib']:.1f} MiB (master {run['master_rss_mib']:.1f}), "
                  f"torch/transformers mapped: {run['heavy']}", flush=True)
    print(f"spawn → first 200 (ms), min / median / max: {_spread([r['seconds'] * 1000 for r in runs], '.0f')}")
    print(f"worker CPU to first 200 (ms), min / median / max: {_spread([r['cpu'] * 1000 for r in runs], '.0f')}")
    print(f"worker VmRSS (MiB), min / median / max: {_spread([r['rss_mib'] for r in runs], '.1f')}")
    print(f"torch or transformers in the worker: {sum(r['heavy'] for r in runs)} of {len(runs)} runs; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
