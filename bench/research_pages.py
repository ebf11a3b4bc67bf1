"""Figures for the researcher pages: the policy-vs-base win rate per round, the runs page that shows
it, the comparison page and the instructions versions list, on a bulk-loaded project.

    .venv/bin/python bench/research_pages.py [--rounds 10] [--comparisons 1000] [--labels 2]
    .venv/bin/python bench/research_pages.py --database-url postgres://postgres@127.0.0.1:5432/NAME

Not a test: it prints the median of --repeat timings and the query count of each read. Without
--database-url it runs on SQLite in a throwaway folder; a PostgreSQL database given is migrated
and gets one more project (slug bench-research-N) on every run.
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


def _timed(fn, repeat: int) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, len(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--comparisons", type=int, default=1000, help="per round")
    parser.add_argument("--labels", type=int, default=2, help="per comparison")
    parser.add_argument("--detail-labels", type=int, default=50, help="labels on the comparison the detail page shows")
    parser.add_argument("--versions", type=int, default=20, help="instructions versions")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="rlhf-research-bench-"))
    os.environ.update({"RLHF_VAR_DIR": str(var), "DATABASE_URL": args.database_url or f"sqlite:///{var / 'db.sqlite3'}",
                       "CELERY_BROKER_URL": "memory://", "DJANGO_SETTINGS_MODULE": "config.settings.base",
                       "RLHF_SKIP_BOOTSTRAP": "1", "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "testserver"})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from labeling.models import Assignment, Comparison, ComparisonSample, Instructions, Label, Project, Query, Sample
    from labeling.roles import CONTRACTOR, RESEARCHER, roles_ensure, user_set_role
    from labeling.selectors.comparisons import comparison_detail
    from labeling.selectors.instructions import instructions_versions
    from training.models import BASE_POLICY_SOURCE, Round, TrainingRun
    from training.selectors import round_win_rates

    # 1. Load: K=4 comparisons of 2 policy + 2 base samples on validation queries, labels by distinct labelers.
    roles_ensure()
    from django.contrib.auth import get_user_model

    User = get_user_model()
    started = time.perf_counter()
    n_projects = Project.objects.filter(slug__startswith="bench-research-").count()
    project = Project.objects.create(name="Bench research", slug=f"bench-research-{n_projects}", k=4)
    prefix = f"br{n_projects}-"
    researcher = User.objects.create_user(f"{prefix}researcher", password="x-bench-password-1")
    user_set_role(researcher, RESEARCHER)
    n_labelers = max(args.labels, args.detail_labels)
    labelers = User.objects.bulk_create([User(username=f"{prefix}l{i}") for i in range(n_labelers)])
    for labeler in labelers[:1]:
        user_set_role(labeler, CONTRACTOR)
    versions = [Instructions.objects.create(project=project, version=v + 1, body=f"rules v{v + 1}\n" * 20,
                                            created_by=researcher) for v in range(args.versions)]
    now = timezone.now()
    for number in range(1, args.rounds + 1):
        rnd = Round.objects.create(project=project, number=number)
        run = TrainingRun.objects.create(project=project, round=rnd, kind=TrainingRun.Kind.SAMPLE, base_model="tiny")
        queries = Query.objects.bulk_create([Query(project=project, context=f"context {number}-{i}", split="valid")
                                             for i in range(args.comparisons)])
        sources = [f"run{run.id}-final", BASE_POLICY_SOURCE, f"run{run.id}-final", BASE_POLICY_SOURCE]
        samples = Sample.objects.bulk_create([Sample(query=q, text=f"sample {j}", source=sources[j])
                                              for q in queries for j in range(4)])
        comparisons = Comparison.objects.bulk_create([
            Comparison(project=project, query=q, labels_wanted=args.labels, label_count=args.labels, open_slots=0,
                       source_run=run) for q in queries])
        ComparisonSample.objects.bulk_create([ComparisonSample.of(c, samples[4 * i + j], j)
                                              for i, c in enumerate(comparisons) for j in range(4)])
        assignments = Assignment.objects.bulk_create([
            Assignment(comparison=c, labeler=labelers[n], display_order=[0, 1, 2, 3], leased_at=now, expires_at=now,
                       state=Assignment.State.SUBMITTED) for c in comparisons for n in range(args.labels)])
        Label.objects.bulk_create([
            Label(assignment=a, comparison_id=a.comparison_id, labeler_id=a.labeler_id, chosen_index=(a.id * 7) % 4,
                  display_position=(a.id * 7) % 4, duration_ms=1000, instructions=versions[-1]) for a in assignments])
    shown = Comparison.objects.filter(project=project).order_by("id").first()
    extra = Assignment.objects.bulk_create([
        Assignment(comparison=shown, labeler=labelers[n], display_order=[3, 2, 1, 0], leased_at=now, expires_at=now,
                   state=Assignment.State.SUBMITTED) for n in range(args.labels, args.detail_labels)])
    Label.objects.bulk_create([Label(assignment=a, comparison=shown, labeler_id=a.labeler_id, chosen_index=1,
                                     display_position=2, duration_ms=500, instructions=versions[0]) for a in extra])
    total = Label.objects.filter(comparison__project=project).count()
    print(f"database: {connection.vendor}; machine: {os.cpu_count()} cores; loaded in {time.perf_counter() - started:.1f} s")
    print(f"project: {args.rounds} rounds x {args.comparisons} comparisons (K=4, 2 policy + 2 base), "
          f"{total} labels; {args.versions} instructions versions; detail comparison with {args.detail_labels} labels")

    # 2. Reads, then the pages through the test client (rendering included).
    client = Client()
    client.force_login(researcher)
    runs_url = reverse("training-project-runs", kwargs={"slug": project.slug})
    detail_url = reverse("labeling-comparison-detail", kwargs={"slug": project.slug, "comparison_id": shown.id})
    list_url = reverse("labeling-instructions-list", kwargs={"slug": project.slug})
    measures = [
        ("round_win_rates(split=valid)", lambda: round_win_rates(project=project)),
        ("comparison_detail", lambda: comparison_detail(shown)),
        ("instructions_versions", lambda: list(instructions_versions(project))),
        ("GET runs page", lambda: client.get(runs_url)),
        ("GET comparison page", lambda: client.get(detail_url)),
        ("GET instructions list", lambda: client.get(list_url)),
        ("GET win-rate CSV", lambda: client.get(reverse("training-win-rates-csv", kwargs={"slug": project.slug}))),
    ]
    for name, fn in measures:
        ms, queries = _timed(fn, args.repeat)
        print(f"{name:36s} median {ms:8.1f} ms  {queries} queries")
    rows = round_win_rates(project=project)
    r = rows[0]
    print(f"round {r.round_number}: n={r.n} win rate {r.rate:.3f} [{r.interval[0]:.3f}, {r.interval[1]:.3f}] "
          f"chance {r.chance:.2f}")


if __name__ == "__main__":
    main()
