"""What a reward fit trains and checks on: the project's labels as the library's records (a snapshot),
the researchers' calibration answers, and the base policy's stored samples for normalisation."""
from __future__ import annotations

from collections import defaultdict

from labeling.models import ComparisonSample
from training.models import BASE_POLICY_SOURCE
from training.rlhf.data import Comparison


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
