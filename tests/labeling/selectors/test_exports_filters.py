"""Export filters: each narrows the export to what it names, the count agrees with the lines, and a filter
that is malformed or cannot match is refused naming its field."""
import json
from datetime import date, datetime, timezone as dt_timezone

import pytest

from labeling.errors import InvalidInput
from labeling.models import Label, Query, SimulatedLabeler
from labeling.roles import CONTRACTOR
from labeling.selectors.exports import (
    labels_export_count,
    labels_export_filters_check,
    labels_export_rows,
    labels_export_versions,
)
from labeling.services import comparisons_import, instructions_publish
from tests.factories import UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


def _labeled(project, labeler, *, split="train", calibration=False, instructions=None, at=None, skipped=False):
    """One comparison of `split` and one label on it; `at` (aware datetime) overrides its created_at."""
    comparison = make_comparison(project, is_calibration=calibration)
    Query.objects.filter(id=comparison.query_id).update(split=split)
    label = make_label(comparison, labeler, chosen_index=None if skipped else 1, instructions=instructions)
    if at is not None:
        Label.objects.filter(id=label.id).update(created_at=at)
    return label


def _ids(**filters):
    return [row["comparison_id"] for row in labels_export_rows(layout="2019", **filters)]


def _utc(*args):
    return datetime(*args, tzinfo=dt_timezone.utc)


def test_split_filter_keeps_that_split(project, contractor):
    train = _labeled(project, contractor, split="train")
    valid = _labeled(project, contractor, split="valid")
    test = _labeled(project, contractor, split="test")
    assert _ids(project=project) == [train.comparison_id, valid.comparison_id, test.comparison_id]
    assert _ids(project=project, split="valid") == [valid.comparison_id]


def test_date_range_is_inclusive_on_both_days(project, contractor):
    before = _labeled(project, contractor, at=_utc(2024, 2, 29, 23, 59))
    first = _labeled(project, contractor, at=_utc(2024, 3, 1, 0, 0))
    last = _labeled(project, contractor, at=_utc(2024, 3, 2, 23, 59, 59))
    after = _labeled(project, contractor, at=_utc(2024, 3, 3, 0, 0))
    both = {"created_from": date(2024, 3, 1), "created_to": date(2024, 3, 2)}
    assert _ids(project=project, **both) == [first.comparison_id, last.comparison_id]
    assert _ids(project=project, created_from=date(2024, 3, 2)) == [last.comparison_id, after.comparison_id]
    assert _ids(project=project, created_to=date(2024, 2, 29)) == [before.comparison_id]
    assert _ids(project=project, created_from=date(2024, 3, 1), created_to=date(2024, 3, 1)) == [first.comparison_id]


def test_dates_are_days_of_the_sites_time_zone(project, contractor, settings):
    """At 03:00 UTC on 1 March it is still 29 February in New York: a New York site counts it then."""
    settings.TIME_ZONE = "America/New_York"
    label = _labeled(project, contractor, at=_utc(2024, 3, 1, 3, 0))
    assert _ids(project=project, created_from=date(2024, 2, 29), created_to=date(2024, 2, 29)) == [label.comparison_id]
    assert _ids(project=project, created_from=date(2024, 3, 1)) == []


def test_instructions_version_filter(project, contractor, researcher):
    v1 = instructions_publish(project=project, body="Pick the kindest.", author=researcher)
    v2 = instructions_publish(project=project, body="Pick the most accurate.", author=researcher)
    under_v1 = _labeled(project, contractor, instructions=v1)
    under_v2 = _labeled(project, contractor, instructions=v2)
    _labeled(project, contractor)  # given before any instructions existed
    assert labels_export_versions(project=project) == [1, 2]
    assert _ids(project=project, instructions_version=1) == [under_v1.comparison_id]
    assert _ids(project=project, instructions_version=2) == [under_v2.comparison_id]


def test_labeler_kinds_split_every_label_three_ways(project, contractor):
    """People label here, simulated accounts label here, imports write labels: each kind is exactly its own."""
    person = _labeled(project, contractor)
    bot = UserFactory(username="sim-random-1", role=CONTRACTOR)
    SimulatedLabeler.objects.create(user=bot, kind=SimulatedLabeler.Kind.RANDOM, temperature=1.0, seed=3)
    simulated = _labeled(project, bot)
    comparisons_import(project=project, source=json.dumps(
        {"query": "imported q", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d", "best": 2,
         "labeler": "legacy"}).encode())
    imported = Label.objects.get(source_import__isnull=False)

    assert _ids(project=project, labeler_kind="people") == [person.comparison_id]
    assert _ids(project=project, labeler_kind="simulated") == [simulated.comparison_id]
    assert _ids(project=project, labeler_kind="imported") == [imported.comparison_id]
    assert len(_ids(project=project)) == 3


def test_calibration_include_exclude_only(project, contractor, researcher):
    regular = _labeled(project, contractor)
    calibration = _labeled(project, researcher, calibration=True)
    assert _ids(project=project) == [regular.comparison_id, calibration.comparison_id]
    assert _ids(project=project, calibration="exclude") == [regular.comparison_id]
    assert _ids(project=project, calibration="only") == [calibration.comparison_id]
    row = next(labels_export_rows(project=project, layout="2019", calibration="only"))
    assert row["calibration"] is True and row["labeler"] == researcher.username


def test_filters_combine_and_the_count_agrees_with_the_lines(project, contractor, other_contractor):
    wanted = _labeled(project, contractor, split="valid", at=_utc(2024, 5, 2, 12))
    _labeled(project, other_contractor, split="valid", calibration=True, at=_utc(2024, 5, 2, 12))
    _labeled(project, contractor, split="train", at=_utc(2024, 5, 2, 12))
    _labeled(project, contractor, split="valid", at=_utc(2024, 6, 1, 12))
    _labeled(project, contractor, split="valid", at=_utc(2024, 5, 2, 13), skipped=True)
    filters = {"split": "valid", "created_from": date(2024, 5, 1), "created_to": date(2024, 5, 31),
               "labeler_kind": "people", "calibration": "exclude"}
    assert _ids(project=project, **filters) == [wanted.comparison_id]
    assert labels_export_count(project=project, **filters) == 1
    assert labels_export_count(project=project) == 4
    assert len(list(labels_export_rows(project=project, layout="pairs", **filters))) == 3  # K−1 lines a label


def test_filtered_export_reads_in_a_constant_number_of_queries(project, contractor, researcher,
                                                                django_assert_num_queries):
    v1 = instructions_publish(project=project, body="Pick one.", author=researcher)
    for _ in range(4):
        _labeled(project, contractor, instructions=v1)
    with django_assert_num_queries(3):  # the version exists; labels; their samples
        rows = list(labels_export_rows(project=project, layout="2019", instructions_version=1,
                                       labeler_kind="people", calibration="exclude"))
    assert len(rows) == 4


@pytest.mark.parametrize(("filters", "field", "message"), [
    ({"created_from": date(2024, 3, 2), "created_to": date(2024, 3, 1)}, "created_to", r"ends \(2024-03-01\) before"),
    ({"created_from": "2024-03-01"}, "created_from", "must be a date"),
    ({"instructions_version": 3}, "instructions_version", "has no instructions version 3"),
    ({"instructions_version": "1"}, "instructions_version", "must be a version number"),
    ({"labeler_kind": "robots"}, "labeler_kind", "must be one of people, simulated, imported"),
    ({"calibration": "maybe"}, "calibration", "must be one of include, exclude, only"),
    ({"split": "dev"}, "split", "must be one of train, valid, test"),
])
def test_bad_filters_are_refused_naming_the_field(project, filters, field, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        labels_export_filters_check(project=project, **filters)
    assert caught.value.field == field
    with pytest.raises(InvalidInput):
        labels_export_rows(project=project, layout="2019", **filters)
    with pytest.raises(InvalidInput):
        labels_export_count(project=project, **filters)
