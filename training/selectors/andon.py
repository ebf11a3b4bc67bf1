"""Who may pull a run's cord: the comparisons that show its samples, and whether a user was shown them."""
from __future__ import annotations

from django.db.models import Q

from labeling.models import Assignment
from labeling.models import (
    Comparison as LabelingComparison,  # Comparison here is the library's record
)
from training.models import TrainingRun


def run_comparisons(run: TrainingRun):
    """Comparisons that show this run's samples: published by it, or by sampling from its policy."""
    return LabelingComparison.objects.filter(Q(source_run=run) | Q(source_run__policy_run=run))


def run_served_to(*, run: TrainingRun, user) -> bool:
    """Has this user been shown samples of this run (the contractor's right to pull its cord)?"""
    return Assignment.objects.filter(labeler=user, comparison__in=run_comparisons(run)).exists()
