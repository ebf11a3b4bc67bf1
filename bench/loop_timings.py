"""Figures for the loop: seconds from an andon pull to the run's stopped state, and the wall time
of one demo round, on the embedded stack (SQLite + filesystem broker + a real Celery worker).

    .venv/bin/python bench/loop_timings.py [--pulls 5] [--skip-round]

Prints each measurement, then the median. Runs in a throwaway folder; touches nothing else.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pulls", type=int, default=5)
    parser.add_argument("--skip-round", action="store_true")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="rlhf-loop-bench-"))
    env = {"RLHF_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}", "CELERY_BROKER_URL": "filesystem://",
           "DJANGO_SETTINGS_MODULE": "config.settings.base", "RLHF_SKIP_BOOTSTRAP": "1", "C_FORCE_ROOT": "1",
           "OMP_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    for key in ("data_folder_in", "processed_folder", "control_folder"):
        os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)
    call_command("migrate", verbosity=0)

    from django.contrib.auth import get_user_model

    from labeling.services.demo import demo_autolabel, demo_seed
    from labeling.models import Comparison, Project
    from training.models import Round, TrainingRun
    from training.services import andon_pull, round_start, run_create

    demo_seed()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "--quiet", "worker", "-Q", "training,default",
         "--concurrency", "1", "--prefetch-multiplier", "1", "--max-tasks-per-child", "1", "--loglevel", "WARNING"],
        cwd=ROOT, env={**os.environ}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        project = Project.objects.get(slug="positive-continuations")
        admin = get_user_model().objects.get(username="admin")
        print(f"machine: {os.cpu_count()} cores; tiny GPT-2; SQLite + filesystem broker; 1 training worker")

        # 1. Cord pull → stopped, on PPO runs that are mid-training.
        latencies = []
        for i in range(args.pulls):
            run = run_create(project=project, kind="ppo", base_model="tiny", seed=i, started_by=admin,
                             config={"reward": "builtin:lowercase", "total_episodes": 32 * 500, "batch_size": 32,
                                     "query_length": 64, "response_length": 24, "save_every": 50})
            while TrainingRun.objects.get(id=run.id).step < 2:
                time.sleep(0.05)
            started = time.perf_counter()
            andon_pull(run=run, user=admin, reason="bench")
            while TrainingRun.objects.get(id=run.id).status != TrainingRun.Status.STOPPED:
                time.sleep(0.02)
            latencies.append(time.perf_counter() - started)
            print(f"pull {i + 1}: stopped (checkpoint written) {latencies[-1]:.2f} s after the pull")
        print(f"cord pull → stopped: median {statistics.median(latencies):.2f} s over {len(latencies)} pulls")

        # 2. One demo round: simulated sentiment labelers label 40, then fit → PPO → sample with the demo settings.
        if not args.skip_round:
            demo_autolabel(project=project, n=40)
            started = time.perf_counter()
            rnd = round_start(project=project, user=admin)
            while Round.objects.get(id=rnd.id).status == Round.Status.RUNNING:
                time.sleep(0.2)
            wall = time.perf_counter() - started
            rnd.refresh_from_db()
            runs = ", ".join(f"{r.kind} {r.status}" for r in rnd.runs.order_by("id"))
            published = Comparison.objects.filter(source_run__round=rnd).count()
            print(f"demo round: {wall:.1f} s wall ({runs}; {published} new comparisons)")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


if __name__ == "__main__":
    main()
