"""The andon cord's reads: who may pull a run's cord, which policy a comparison shows, what descends from a
policy (runs and comparisons a pull stops and withdraws), and whether a run's checkpoints are quarantined."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db.models import Min, Q
from django.http import Http404

from labeling.models import Assignment, ComparisonSample, Label
from labeling.models import (
    Comparison as LabelingComparison,  # Comparison here is the library's record
)
from training.models import BASE_POLICY_SOURCE, AndonPull, Checkpoint, TrainingRun

_CHECKPOINT_NAME = re.compile(r"^run(\d+)-step(\d+)$")


def run_comparisons(run: TrainingRun):
    """Comparisons that show this run's samples: published by it, or by sampling from its policy."""
    return LabelingComparison.objects.filter(Q(source_run=run) | Q(source_run__policy_run=run))


def run_served_to(*, run: TrainingRun, user) -> bool:
    """Has this user been shown samples of this run (the contractor's right to pull its cord)?"""
    return Assignment.objects.filter(labeler=user, comparison__in=run_comparisons(run)).exists()


def user_sees_all_runs(user) -> bool:
    """Researchers and admins see every run and may pull any cord; labelers only what they were shown."""
    return user.is_authenticated and (user.has_perm("training.start_runs") or user.has_perm("training.manage_runs"))


def comparison_served_to(*, comparison: LabelingComparison, user) -> bool:
    return Assignment.objects.filter(labeler=user, comparison=comparison).exists()


def comparison_get_for_puller(*, comparison_id: int, user) -> LabelingComparison:
    """The comparison a user may pull the cord on (shown to them, or any for researchers and admins); 404
    otherwise, so a comparison's existence is not learnt by id."""
    comparison = LabelingComparison.objects.select_related("source_run__policy_run").filter(id=comparison_id).first()
    if comparison is None or not (user_sees_all_runs(user) or comparison_served_to(comparison=comparison, user=user)):
        raise Http404("No such comparison.")
    return comparison


def comparison_policy(comparison: LabelingComparison) -> tuple[TrainingRun | None, str]:
    """(the run whose policy wrote this comparison's samples, the checkpoint name on them).

    A sample run's comparisons show its PPO run's policy; online publishing's show the PPO run itself. A
    sample run of the base policy alone is its own answer (there is no checkpoint to quarantine)."""
    run = comparison.source_run
    if run is None:
        return None, ""
    policy = run.policy_run if run.kind == TrainingRun.Kind.SAMPLE and run.policy_run_id else run
    sources = ComparisonSample.objects.filter(comparison=comparison).values_list("sample__source", flat=True)
    names = sorted({s for s in sources if _CHECKPOINT_NAME.match(s) and s.startswith(f"run{policy.id}-")})
    return policy, names[-1] if names else ""


def checkpoint_by_name(run: TrainingRun, name: str) -> Checkpoint | None:
    """The checkpoint row a sample names (`run5-step3`), else the run's final one."""
    match = _CHECKPOINT_NAME.match(name or "")
    if match and int(match.group(1)) == run.id:
        row = Checkpoint.objects.filter(run=run, step=int(match.group(2))).first()
        if row is not None:
            return row
    return Checkpoint.objects.filter(run=run).order_by("-is_final", "-step").first()


def _base_model_run_id(base_model: str) -> int | None:
    """The run whose artifacts folder `base_model` points into (a checkpoint used as a base), else None."""
    if not base_model or "/" not in base_model:
        return None
    root = (Path(settings.ARTIFACTS_DIR) / "runs").resolve()
    try:
        relative = Path(base_model).resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    match = re.match(r"^run-(\d+)$", relative.parts[0]) if relative.parts else None
    return int(match.group(1)) if match else None


def run_descendants(run: TrainingRun) -> list[int]:
    """Ids of `run` and every run of its project that trains from or samples its policy, directly or through
    another: sample runs of it, runs whose base model is one of its checkpoints, reward fits whose label
    snapshot holds labels on its samples, PPO runs against such a reward model, and so on."""
    rows = list(TrainingRun.objects.filter(project_id=run.project_id).values(
        "id", "kind", "policy_run_id", "reward_run_id", "base_model", "product", "created_at"))
    found = {run.id}
    while True:
        first = (Label.objects.filter(comparison__source_run_id__in=found, skipped=False)
                 .aggregate(id=Min("id"), at=Min("created_at")))
        grown = set(found)
        for row in rows:
            if row["id"] in grown:
                continue
            if row["policy_run_id"] in found or row["reward_run_id"] in found \
                    or _base_model_run_id(row["base_model"]) in found:
                grown.add(row["id"])
            elif row["kind"] == TrainingRun.Kind.FIT_REWARD and first["id"] is not None:
                # A reward fit trains on its label snapshot (without one: every label there was when it began).
                max_label = ((row["product"] or {}).get("label_snapshot") or {}).get("max_label_id")
                if (max_label >= first["id"]) if max_label is not None else row["created_at"] >= first["at"]:
                    grown.add(row["id"])
        if grown == found:
            return sorted(found)
        found = grown


def policy_comparisons(*, run_ids: list[int], sources: list[str], project_id: int):
    """Comparisons showing samples of these runs (published by them) or carrying one of these checkpoint names."""
    sources = [s for s in sources if s and s != BASE_POLICY_SOURCE]
    by_sample = ComparisonSample.objects.filter(sample__source__in=sources).values("comparison_id")
    return LabelingComparison.objects.filter(project_id=project_id).filter(
        Q(source_run_id__in=run_ids) | Q(id__in=by_sample))


def run_quarantine(run_id: int | None) -> AndonPull | None:
    """The pull that keeps this run's checkpoints from being sampled, published or used as a base, if any."""
    if run_id is None:
        return None
    return (AndonPull.objects.filter(run_id=run_id, resolution__in=AndonPull.QUARANTINE)
            .order_by("-created_at").first())


def base_model_quarantine(base_model: str) -> AndonPull | None:
    """The pull quarantining the checkpoint `base_model` points at, if it is one."""
    return run_quarantine(_base_model_run_id(base_model))


def andon_excluded_comparison_ids(*, project):
    """Comparisons whose labels reward fits leave out: withdrawn by an open pull (under review), or by a
    confirmed one whose admin chose to exclude them."""
    pulls = AndonPull.objects.filter(run__project=project).filter(
        Q(resolution=AndonPull.Resolution.OPEN) | Q(resolution=AndonPull.Resolution.CONFIRMED, exclude_labels=True))
    return AndonPull.withdrawn.through.objects.filter(andonpull__in=pulls).values("comparison_id")


def run_stopping_pulls(run: TrainingRun):
    """Pulls that stopped this run or quarantine it and are not resolved in its favour (block a resume)."""
    return (AndonPull.objects.filter(Q(stopped=run) | Q(run=run))
            .filter(resolution__in=[AndonPull.Resolution.OPEN, AndonPull.Resolution.CONFIRMED])
            .distinct().select_related("run").order_by("-created_at"))
