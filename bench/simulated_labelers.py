"""Figures for simulated labelers: labels a second through the labeling services (no rate limit),
and how often each kind's picks agree with VADER's favourite at its default temperature, on the
demo's continuation project (embedded stack: SQLite).

    .venv/bin/python bench/simulated_labelers.py [--repeats 3]

Prints each measurement, then the median. Runs in a throwaway folder; touches nothing else.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="rlhf-simlab-bench-"))
    os.environ.update({"RLHF_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
                       "CELERY_BROKER_URL": "memory://", "DJANGO_SETTINGS_MODULE": "config.settings.base",
                       "RLHF_SKIP_BOOTSTRAP": "1", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from labeling.services.demo import demo_seed
    from labeling.models import Assignment, Comparison, Label, Project
    from labeling.services.simulation import LabelerSpec, simulate_labeling, simulated_labelers_ensure
    from labeling.scorers import KINDS, score_sentiment
    from training.selectors import comparison_records_for_snapshot

    demo_seed()
    project = Project.objects.get(slug="positive-continuations")
    n_comparisons = Comparison.objects.filter(project=project).count()
    print(f"machine: {os.cpu_count()} cores; SQLite; demo project with {n_comparisons} comparisons, K={project.k}")

    def reset() -> None:
        Label.objects.all().delete()
        Assignment.objects.all().delete()
        Comparison.objects.filter(project=project).update(label_count=0, open_slots=1)

    # 1. Throughput: every comparison labeled once by 3 accounts taking turns.
    rates = []
    for i in range(args.repeats):
        reset()
        labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 3)])
        started = time.perf_counter()
        counts = simulate_labeling(project=project, labelers=labelers)
        seconds = time.perf_counter() - started
        rates.append(counts.labeled / seconds)
        print(f"run {i + 1}: {counts.labeled} labels in {seconds:.2f} s = {rates[-1]:.0f} labels/s")
    print(f"throughput: median {statistics.median(rates):.0f} labels/s over {len(rates)} runs")

    # 2. Agreement with VADER's favourite sample, per kind at its default temperature.
    for kind in KINDS:
        reset()
        labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec(kind, 1)])
        simulate_labeling(project=project, labelers=labelers)
        records = comparison_records_for_snapshot(project=project, max_label_id=None)
        agree = 0
        for record in records:
            scores = [score_sentiment(t) for t in record.samples]
            agree += scores[record.best] == max(scores)
        print(f"{kind:>9} (T={labelers[0].temperature:g}): picks VADER's favourite in {agree}/{len(records)} "
              f"= {agree / max(1, len(records)):.0%} (chance {1 / project.k:.0%})")


if __name__ == "__main__":
    main()
