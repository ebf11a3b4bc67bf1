"""What a reward fit trains and checks on: the project's labels as the library's records (a snapshot),
the researchers' calibration answers, and the base policy's stored samples for normalisation.

Only labels of train-split, non-calibration comparisons are trained on. Valid-split labels measure the
fitted model (held-out accuracy); test-split labels are kept for final evaluations; calibration
comparisons are the researchers' check on the reward (the sign-flip tripwire), never training data."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, Value

from labeling.models import ComparisonSample, Query
from training.models import BASE_POLICY_SOURCE
from training.rlhf.data import Comparison
from training.selectors.andon import andon_excluded_comparison_ids

# What each part of a project's labels is for in a reward fit, in the order the run page lists them.
PART_USES = {
    Query.Split.TRAIN: "trained on",
    Query.Split.VALID: "held-out accuracy only (reward/valid_accuracy)",
    Query.Split.TEST: "left out: test split, kept for final evaluations",
    "calibration": "left out: calibration, the researchers' check on the reward",
    "andon": "left out: samples of a policy under an andon pull (open, or confirmed with its labels excluded)",
}


@dataclass
class RewardFitData:
    """The records a fit trains on and is measured on, and per part of the labels what was used (`report`)."""

    train: list[Comparison]
    valid: list[Comparison]
    report: dict = field(default_factory=dict)


def _records(labels, *, stored_tokens: bool = False) -> list[Comparison]:
    """training/rlhf Comparison records (query, samples, best, and the answer's other parts): one per label
    (several labels of one comparison are several training rows, as in the 2019 code), grouped by comparison id so the
    library's held-out split keeps them on one side. `stored_tokens`: a sample imported as token ids is
    trained on those ids (2020 trained on its stored tokens), not on its text tokenised again."""
    labels = list(labels.select_related("comparison__query", "comparison__project").order_by("id"))
    texts: dict[int, list] = defaultdict(list)
    entries = (ComparisonSample.objects.filter(comparison_id__in={label.comparison_id for label in labels})
               .order_by("comparison_id", "position").values_list("comparison_id", "sample__text", "sample__tokens"))
    for comparison_id, text, tokens in entries:
        texts[comparison_id].append(tokens if stored_tokens and tokens else text)
    # A pairwise-confidence label carries its 9-point answer (the fit uses it with label_smoothing_from_confidence);
    # a ranking, Likert ratings and "none acceptable" travel too (ranking_loss, likert_coef, acceptability_coef).
    # none_acceptable is None where the project does not offer the option: False there would say "acceptable".
    return [Comparison(query=label.comparison.query.context, samples=texts[label.comparison_id],
                       best=label.chosen_index, group=label.comparison_id,
                       confidence=label.confidence if len(texts[label.comparison_id]) == 2 else None,
                       ranks=label.ranking, likert=label.likert or None,
                       none_acceptable=label.none_acceptable if label.comparison.project.allow_none_acceptable
                       else None)
            for label in labels]


def _snapshot_labels(*, project, max_label_id: int | None):
    from labeling.models import Label

    # Labels on samples of a policy under an open andon pull, or a confirmed one that excludes them, are left out;
    # so are qualification answers (labeling/services/qualification.py: a test of the labeler, not data).
    labels = Label.objects.filter(comparison__project=project, comparison__is_qualification=False,
                                  skipped=False).exclude(
        comparison_id__in=andon_excluded_comparison_ids(project=project))
    return labels if max_label_id is None else labels.filter(id__lte=max_label_id)


def _part_counts(*, project, max_label_id: int | None) -> list[dict]:
    """Per part (split, or calibration whatever its split, or andon whatever both): comparisons and answered
    labels in the snapshot, skipped labels in it, and labels written after it. One grouped query."""
    from labeling.models import Label

    after = (ExpressionWrapper(Q(id__gt=max_label_id), output_field=BooleanField()) if max_label_id is not None
             else Value(False, output_field=BooleanField()))
    andon = ExpressionWrapper(Q(comparison_id__in=andon_excluded_comparison_ids(project=project)),
                              output_field=BooleanField())
    rows = (Label.objects.filter(comparison__project=project, comparison__is_qualification=False)
            .annotate(after=after, andon=andon)
            .values("comparison__is_calibration", "comparison__query__split", "skipped", "after", "andon")
            .annotate(labels=Count("id"), comparisons=Count("comparison_id", distinct=True)).order_by())
    parts = {str(name): _part(str(name), use) for name, use in PART_USES.items() if name != "andon"}  # when any
    for row in rows:
        name = ("andon" if row["andon"] else "calibration" if row["comparison__is_calibration"]
                else row["comparison__query__split"])
        part = parts.setdefault(name, _part(name, PART_USES.get(name, "left out: unknown split")))
        if row["after"]:
            part["after_snapshot"] += row["labels"]
        elif row["skipped"]:
            part["skipped"] += row["labels"]
        else:
            part["labels"] += row["labels"]
            part["comparisons"] += row["comparisons"]
    return list(parts.values())


def _part(name: str, use: str) -> dict:
    return {"part": name, "use": use, "comparisons": 0, "labels": 0, "skipped": 0, "after_snapshot": 0}


def reward_fit_data(*, project, max_label_id: int | None, stored_tokens: bool = False) -> RewardFitData:
    """The snapshot's answered labels of train-split, non-calibration comparisons (training records),
    those of valid-split ones (held-out accuracy), and the counts of every part for the run's report."""
    labels = _snapshot_labels(project=project, max_label_id=max_label_id).filter(comparison__is_calibration=False)
    return RewardFitData(
        train=_records(labels.filter(comparison__query__split=Query.Split.TRAIN), stored_tokens=stored_tokens),
        valid=_records(labels.filter(comparison__query__split=Query.Split.VALID), stored_tokens=stored_tokens),
        report={"max_label_id": max_label_id, "parts": _part_counts(project=project, max_label_id=max_label_id)},
    )


def comparison_records_for_snapshot(*, project, max_label_id: int | None) -> list[Comparison]:
    """What a reward fit trains on: answered labels of train-split, non-calibration comparisons up to the
    snapshot, as training records."""
    labels = _snapshot_labels(project=project, max_label_id=max_label_id)
    return _records(labels.filter(comparison__is_calibration=False, comparison__query__split=Query.Split.TRAIN))


def calibration_records(*, project) -> list[Comparison]:
    """Researchers' answers on the calibration slice: the ground truth the tripwires check a reward against
    (researchers as labeling/roles.py defines them, the same set the dashboards judge labelers by)."""
    from labeling.models import Label
    from labeling.roles import researchers

    labels = Label.objects.filter(comparison__project=project, comparison__is_calibration=True, skipped=False,
                                  labeler__in=researchers())
    return _records(labels)


def base_policy_sample_pairs(*, project, base_model: str, limit: int) -> list[tuple[str, str]]:
    """(query, text) of stored samples the base policy rho wrote in this project's sample runs with
    `base_model`, oldest first, at most `limit`: what the reward fit's normalize_before step scores."""
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
