"""A real Celery worker process for the loop's end-to-end tests.

The worker runs `celery -A config worker` in a subprocess against this test's database (the
PostgreSQL test database, or the SQLite test file) and a filesystem broker in a temporary
folder; the test process sends tasks to the same folder.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class LiveWorker:
    def __init__(self, tmp: Path, extra_env: dict):
        self.tmp = tmp
        self.extra_env = extra_env
        self.procs: list[subprocess.Popen] = []
        broker = tmp / "broker"
        self.transport_options = {
            "data_folder_in": str(broker / "out"), "data_folder_out": str(broker / "out"),
            "processed_folder": str(broker / "processed"), "control_folder": str(broker / "control"),
            "store_processed": False, "polling_interval": 0.1,
        }
        for folder in ("data_folder_in", "processed_folder", "control_folder"):
            os.makedirs(self.transport_options[folder], exist_ok=True)

    def env(self) -> dict:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "RLHF_SKIP_BOOTSTRAP": "1",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": "filesystem://",
            "RLHF_VAR_DIR": str(self.tmp),
            "ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR),
            "C_FORCE_ROOT": "1",
            "OMP_NUM_THREADS": "1",
            **self.extra_env,
        }

    def start(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", "config", "--quiet", "worker", "-Q", "training,default",
               "--concurrency", "1", "--prefetch-multiplier", "1", "--max-tasks-per-child", "1",
               "--loglevel", "INFO", "-n", f"test{len(self.procs)}@%h"]
        log = open(self.tmp / f"worker{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its pool children (the whole process group)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker*.log")))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run several times faster on one thread here; the same for every test."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _reset_connections(app) -> None:
    """Drop cached broker connections so the next send uses the current broker settings."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def live_worker(tmp_path, transactional_db, settings, monkeypatch):
    """Start with `live_worker.start()`; tasks sent from the test go to its broker folder."""
    from config.celery import app

    # Celery prefers the CELERY_BROKER_URL environment variable over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    worker = LiveWorker(tmp_path, extra_env={})
    saved = {k: app.conf.get(k) for k in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.conf.update(broker_url="filesystem://", broker_transport_options=worker.transport_options,
                    task_always_eager=False)
    _reset_connections(app)
    yield worker
    worker.stop()
    app.conf.update(saved)
    _reset_connections(app)


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.3, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
