"""Reads of the training app, scoped to what the acting user may see."""
from __future__ import annotations

from collections import defaultdict

from django.http import Http404

from labeling.models import ComparisonSample
from training.models import AndonPull, Checkpoint, RunMetric, TrainingRun
from training.rlhf.data import Comparison
from training.services.andon import run_comparisons, run_served_to

CHART_KEYS = ["objective/score", "objective/kl", "objective/kl_coef", "objective/entropy",
              "ppo/loss/policy", "ppo/loss/value", "train/loss", "train/accuracy", "valid/accuracy"]


def user_sees_all_runs(user) -> bool:
    return user.is_authenticated and (user.has_perm("training.start_runs") or user.has_perm("training.manage_runs"))


def run_get_for_user(*, run_id: int, user) -> TrainingRun:
    """The run if this user may see it (researchers, admins, or a labeler shown its samples); else 404."""
    run = TrainingRun.objects.select_related("project", "round", "started_by", "stop_requested_by").filter(id=run_id).first()
    if run is None or not (user_sees_all_runs(user) or run_served_to(run=run, user=user)):
        raise Http404("No such run.")
    return run


def runs_for_project(project):
    return TrainingRun.objects.filter(project=project).select_related("round").order_by("-id")


def run_metric_series(run: TrainingRun, keys: list[str] | None = None) -> dict[str, list[tuple[int, float | None]]]:
    """{key: [(step, value), …]} in step order, for the charts (one query)."""
    series: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    qs = RunMetric.objects.filter(run=run)
    if keys:
        qs = qs.filter(key__in=keys)
    for key, step, value in qs.order_by("key", "step").values_list("key", "step", "value"):
        series[key].append((step, value))
    return dict(series)


def run_latest_metrics(run: TrainingRun) -> dict[str, float | None]:
    latest = RunMetric.objects.filter(run=run, step=run.step).values_list("key", "value")
    return dict(latest)


def run_checkpoints(run: TrainingRun):
    return Checkpoint.objects.filter(run=run).order_by("-step")


def run_audit_log(run: TrainingRun):
    return AndonPull.objects.filter(run=run).select_related("pulled_by", "resolved_by").order_by("-created_at")


def run_samples_side_by_side(run: TrainingRun, limit: int = 8) -> list[dict]:
    """Recent queries with this run's policy samples beside the base policy's (and references)."""
    comparisons = list(run_comparisons(run).select_related("query").order_by("-id")[:limit])
    entries = ComparisonSample.objects.filter(comparison__in=comparisons).select_related("sample")
    by_comparison = defaultdict(list)
    for entry in entries:
        by_comparison[entry.comparison_id].append(entry.sample)
    rows = []
    for comparison in comparisons:
        samples = by_comparison[comparison.id]
        # Policy samples are named by checkpoint; the base policy is "baseline:base-policy".
        baseline = [s for s in samples if s.source.startswith(("baseline:", "reference"))]
        rows.append({
            "context": comparison.query.context,
            "policy": [s for s in samples if s not in baseline],
            "others": baseline,
        })
    return rows


def _records(labels) -> list[Comparison]:
    """training/rlhf Comparison records (query, samples, best): one per label (several labels of one
    comparison are several training rows, as in the 2019 code)."""
    labels = list(labels.select_related("comparison__query").order_by("id"))
    texts: dict[int, list[str]] = defaultdict(list)
    entries = (ComparisonSample.objects.filter(comparison_id__in={label.comparison_id for label in labels})
               .order_by("comparison_id", "position").values_list("comparison_id", "sample__text"))
    for comparison_id, text in entries:
        texts[comparison_id].append(text)
    return [Comparison(query=label.comparison.query.context, samples=texts[label.comparison_id], best=label.chosen_index)
            for label in labels]


def comparison_records_for_snapshot(*, project, max_label_id: int | None) -> list[Comparison]:
    """Every answered (not skipped) label of the project up to the snapshot, as training records."""
    from labeling.models import Label

    labels = Label.objects.filter(comparison__project=project, skipped=False)
    if max_label_id is not None:
        labels = labels.filter(id__lte=max_label_id)
    return _records(labels)


def calibration_records(*, project) -> list[Comparison]:
    """Researchers' answers on the calibration slice: the ground truth the tripwires check a reward against."""
    from django.db.models import Q

    from labeling.models import Label
    from labeling.roles import ADMIN, RESEARCHER

    labels = Label.objects.filter(comparison__project=project, comparison__is_calibration=True, skipped=False).filter(
        Q(labeler__groups__name__in=[RESEARCHER, ADMIN]) | Q(labeler__is_superuser=True)
    ).distinct()
    return _records(labels)


def base_policy_sample_pairs(*, project, base_model: str, limit: int) -> list[tuple[str, str]]:
    """(query, text) of stored samples the base policy rho wrote in this project's sample runs with
    `base_model`, oldest first, at most `limit`: what the reward fit's normalize_before step scores."""
    from training.services.models_io import BASE_POLICY_SOURCE

    rows = (ComparisonSample.objects
            .filter(comparison__project=project, comparison__source_run__base_model=base_model,
                    sample__source=BASE_POLICY_SOURCE)
            .order_by("sample_id").values_list("sample_id", "sample__query__context", "sample__text"))
    pairs: dict[int, tuple[str, str]] = {}
    for sample_id, context, text in rows.iterator():
        pairs.setdefault(sample_id, (context, text))
        if len(pairs) == limit:
            break
    return list(pairs.values())
