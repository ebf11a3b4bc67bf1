"""A run's page, scoped to what the acting user may see: the run, its metric series, checkpoints,
audit log, samples beside the base policy's, a reward fit's data, and the experiment's report and plots."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.http import Http404

from labeling.models import ComparisonSample
from training.models import AndonPull, Checkpoint, RunMetric, TrainingRun
from training.selectors.andon import run_comparisons, run_served_to, user_sees_all_runs

CHART_KEYS = ["objective/score", "objective/kl", "objective/kl_coef", "objective/entropy",
              "ppo/loss/policy", "ppo/loss/value", "train/loss", "train/accuracy", "valid/accuracy"]


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
    """Recent queries with this run's policy samples beside the base policy's (and references): the newest
    comparisons that hold a base or reference sample first (K=2 publishes many policy-only pairs), then others."""
    recent = run_comparisons(run).select_related("query").order_by("-id")
    baseline_q = Q(entries__sample__source__startswith="baseline:") | Q(entries__sample__source__startswith="reference")
    comparisons = list(recent.filter(baseline_q).distinct()[:limit])
    if len(comparisons) < limit:
        comparisons += list(recent.exclude(id__in=[c.id for c in comparisons])[:limit - len(comparisons)])
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
            "comparison": comparison,
            "context": comparison.query.context,
            "policy": [s for s in samples if s not in baseline],
            "others": baseline,
        })
    return rows


# ---------------------------------------------------------------- policy vs base win rate


# ---------------------------------------------------------------- experiment report (manage.py mock_sentiment)

REPORT_PLOTS = {"score_vs_kl": "True score against KL from the base",
                "rm_accuracy": "Reward-model accuracy against labels"}


def run_report(run: TrainingRun) -> dict | None:
    """The experiment's headline figures and the names of its plots, or None for an ordinary run."""
    report = run.report
    if not report or not isinstance(report, dict) or "figures" not in report:
        return None
    plots = report.get("plots") or {}
    return {"figures": report.get("figures") or {},
            "plots": [(name, title) for name, title in REPORT_PLOTS.items() if name in plots]}


def run_reward_data(run: TrainingRun) -> dict | None:
    """A reward fit's data, for its page: per part of the labels (split, or calibration) the comparisons
    and labels used, what for, and those left out (skipped, after the snapshot); None when not recorded."""
    data = run.report.get("reward_data") if isinstance(run.report, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("parts"), list):
        return None
    parts = [p for p in data["parts"] if isinstance(p, dict)]
    trained = sum(p.get("labels") or 0 for p in parts if p.get("part") == "train")
    return {"parts": parts, "max_label_id": data.get("max_label_id"), "valid_accuracy": data.get("valid_accuracy"),
            "trained_labels": trained}


def run_plot_path(run: TrainingRun, name: str) -> Path | None:
    """The stored path of a run's PNG plot when it is a regular .png file under ARTIFACTS_DIR, else None.
    The path comes from the database only; `name` just picks one of the recorded plots."""
    report = run.report
    stored = report.get("plots", {}).get(name) if isinstance(report, dict) and name in REPORT_PLOTS else None
    if not isinstance(stored, str):
        return None
    path = Path(stored).resolve()
    root = Path(settings.ARTIFACTS_DIR).resolve()
    if root not in path.parents or path.suffix != ".png" or not path.is_file():
        return None
    return path
