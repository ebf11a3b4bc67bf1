"""Find, and start if installed but stopped, the local services the tests prefer.

PostgreSQL and Redis on their standard local ports are used when present (as in CI); where
none is installed the tests fall back to SQLite and an in-memory broker. Chromium (Debian's
package) is what Playwright drives in the browser tests.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_for_port(port: int, seconds: float = 20.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port, host):
            return True
        time.sleep(0.3)
    return False


def ensure_postgres() -> str | None:
    """A DATABASE_URL for the local server, starting it if it is installed but stopped."""
    if not port_open(5432) and shutil.which("pg_ctlcluster"):
        versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
        if versions:
            print(f"[test] starting PostgreSQL {versions[-1]}", flush=True)
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
            wait_for_port(5432)
    return "postgres://postgres@127.0.0.1:5432/rlhf" if port_open(5432) else None


def ensure_redis() -> str | None:
    if not port_open(6379) and shutil.which("redis-server"):
        print("[test] starting Redis", flush=True)
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
            check=False,
        )
        wait_for_port(6379)
    return "redis://127.0.0.1:6379/15" if port_open(6379) else None


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str | None:
    """Debian's chromium, installed with apt when we are root and it is missing."""
    found = chromium_path()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("[test] installing Debian's chromium for the browser tests (one time)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "fonts-dejavu-core"], check=False, env=env,
                   stdout=subprocess.DEVNULL)
    return chromium_path()
