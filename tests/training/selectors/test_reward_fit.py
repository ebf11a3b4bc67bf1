"""What a reward fit trains on: train-split, non-calibration labels of the snapshot; the valid split for
held-out accuracy only; counts of every part (and why it was left out) for the run's page."""
import pytest

from labeling.models import Label, Query
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label
from training.selectors import comparison_records_for_snapshot, reward_fit_data

pytestmark = pytest.mark.django_db


def _comparison(project, split, *, is_calibration=False):
    comparison = make_comparison(project, is_calibration=is_calibration)
    Query.objects.filter(id=comparison.query_id).update(split=split)
    return comparison


def test_only_train_split_ordinary_labels_are_training_records_grouped_by_comparison():
    project = ProjectFactory(k=2)
    a, b, c = (UserFactory(username=f"lab-{i}") for i in range(3))
    train, other_train = _comparison(project, "train"), _comparison(project, "train")
    valid, test = _comparison(project, "valid"), _comparison(project, "test")
    calibration = _comparison(project, "train", is_calibration=True)
    calibration_valid = _comparison(project, "valid", is_calibration=True)
    for labeler in (a, b):  # two labels of one comparison: one group
        make_label(train, labeler, chosen_index=1)
    make_label(other_train, a, chosen_index=0)
    make_label(other_train, b, chosen_index=None, skip_reason="unclear")
    make_label(valid, a, chosen_index=0)
    make_label(valid, b, chosen_index=1)
    make_label(test, a, chosen_index=1)
    make_label(calibration, a, chosen_index=0)
    make_label(calibration_valid, a, chosen_index=1)
    snapshot = Label.objects.order_by("-id").first().id
    make_label(other_train, c, chosen_index=1)  # after the snapshot
    make_label(valid, c, chosen_index=0)  # after the snapshot

    data = reward_fit_data(project=project, max_label_id=snapshot)
    assert [(r.group, r.best) for r in data.train] == [(train.id, 1), (train.id, 1), (other_train.id, 0)]
    assert [(r.group, r.best) for r in data.valid] == [(valid.id, 0), (valid.id, 1)]
    assert data.train[0].query == train.query.context and len(data.train[0].samples) == 2
    counts = {p["part"]: (p["comparisons"], p["labels"], p["skipped"], p["after_snapshot"])
              for p in data.report["parts"]}
    assert counts == {"train": (2, 3, 1, 1), "valid": (1, 2, 0, 1), "test": (1, 1, 0, 0), "calibration": (2, 2, 0, 0)}
    uses = {p["part"]: p["use"] for p in data.report["parts"]}
    assert uses["train"] == "trained on" and all(uses[p].startswith("left out") for p in ("test", "calibration"))
    assert data.report["max_label_id"] == snapshot

    assert [r.group for r in comparison_records_for_snapshot(project=project, max_label_id=None)] == [
        train.id, train.id, other_train.id, other_train.id]
    everything = reward_fit_data(project=project, max_label_id=None)
    assert sum(p["after_snapshot"] for p in everything.report["parts"]) == 0 and len(everything.valid) == 3


def test_labels_of_a_pulled_policy_are_left_out_and_counted_as_such():
    """An open pull (or a confirmed one that excludes its labels) takes its comparisons' labels out of the fit,
    and the run page's counts say so instead of counting them as trained on."""
    from training.models import AndonPull
    from tests.factories import TrainingRunFactory

    project = ProjectFactory(k=2)
    a, b = UserFactory(username="lab-a"), UserFactory(username="lab-b")
    kept, pulled = _comparison(project, "train"), _comparison(project, "train")
    for comparison in (kept, pulled):
        make_label(comparison, a, chosen_index=0)
        make_label(comparison, b, chosen_index=1)
    pull = AndonPull.objects.create(run=TrainingRunFactory(project=project), role="contractor", reason="broken")
    pull.withdrawn.add(pulled)

    data = reward_fit_data(project=project, max_label_id=None)
    assert {r.group for r in data.train} == {kept.id}
    counts = {p["part"]: (p["comparisons"], p["labels"]) for p in data.report["parts"]}
    assert counts["train"] == (1, 2) and counts["andon"] == (1, 2)

    AndonPull.objects.filter(id=pull.id).update(resolution=AndonPull.Resolution.DISMISSED)
    counts = {p["part"]: (p["comparisons"], p["labels"]) for p in reward_fit_data(project=project,
                                                                                  max_label_id=None).report["parts"]}
    assert counts["train"] == (2, 4) and "andon" not in counts
