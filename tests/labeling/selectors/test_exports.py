"""Exports: the three layouts, skipped labels left out, round trips through import, streaming reads."""
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from labeling.errors import InvalidInput
from labeling.label_types import BestOfK, best_of_k_record_from_2019
from labeling.models import Comparison, Label
from labeling.selectors.exports import labels_export_jsonl, labels_export_rows
from labeling.services import LabelInput, comparisons_import, label_submit, tokenizer_load
from tests.factories import ProjectFactory, make_assignment, make_comparison

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _answer(project, labeler, position):
    """Lease the next comparison for `labeler` and answer display `position`; returns the label."""
    assignment = make_assignment(project, labeler)
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=position, duration_ms=1),
                            now=timezone.now())
    return label


def _skip(project, labeler):
    assignment = make_assignment(project, labeler)
    label_submit(assignment_id=assignment.id, labeler=labeler,
                 answer=LabelInput(position=None, skipped=True, skip_reason="unreadable", duration_ms=1))


def _core(row: dict, k: int) -> tuple:
    return (row["query"], tuple(row[f"sample{i}"] for i in range(k)), row.get("best"))


# ---------------------------------------------------------------- label type


def test_best_of_k_record_and_its_k_minus_1_pairs():
    label_type = BestOfK(4)
    record = label_type.record(query="q", samples=["a", "b", "c", "d"], best=2)
    assert record.as_2019() == {"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d", "best": 2}
    assert [p.as_dict() for p in label_type.pairs(record)] == [
        {"prompt": "q", "chosen": "c", "rejected": "a"},
        {"prompt": "q", "chosen": "c", "rejected": "b"},
        {"prompt": "q", "chosen": "c", "rejected": "d"},
    ]
    assert best_of_k_record_from_2019(record.as_2019(), 4) == record


@pytest.mark.parametrize("best", [-1, 4, "1", True, None])
def test_best_of_k_rejects_bad_answers(best):
    with pytest.raises(ValueError):
        BestOfK(4).record(query="q", samples=["a", "b", "c", "d"], best=best)


@pytest.mark.parametrize("k", [1, 9, "4"])
def test_best_of_k_rejects_bad_k(k):
    with pytest.raises(ValueError):
        BestOfK(k)


# ---------------------------------------------------------------- layouts


def test_2019_export_one_line_per_answer_with_canonical_best(project, contractor, other_contractor):
    comparison = make_comparison(project, labels_wanted=2, texts=["a", "b", "c", "d"])
    mine = _answer(project, contractor, 1)
    theirs = _answer(project, other_contractor, 3)
    rows = list(labels_export_rows(project=project, layout="2019"))
    assert [_core(r, 4) for r in rows] == [
        (comparison.query.context, ("a", "b", "c", "d"), mine.chosen_index),
        (comparison.query.context, ("a", "b", "c", "d"), theirs.chosen_index),
    ]
    assert [r["labeler"] for r in rows] == ["contractor1", "contractor2"]
    assert rows[0]["comparison_id"] == comparison.id and rows[0]["calibration"] is False


def test_skipped_labels_are_left_out(project, contractor):
    make_comparison(project)
    make_comparison(project)
    _skip(project, contractor)
    _answer(project, contractor, 0)
    for layout in ("2019", "pairs"):
        rows = list(labels_export_rows(project=project, layout=layout))
        assert len(rows) == {"2019": 1, "pairs": 3}[layout]
    assert Label.objects.filter(skipped=True).count() == 1


def test_pairs_export_gives_k_minus_1_pairs_per_label(project, contractor):
    make_comparison(project, texts=["a", "b", "c", "d"])
    label = _answer(project, contractor, 2)
    chosen = "abcd"[label.chosen_index]
    rows = list(labels_export_rows(project=project, layout="pairs"))
    assert len(rows) == 3
    assert {r["chosen"] for r in rows} == {chosen}
    assert sorted(r["rejected"] for r in rows) == sorted(set("abcd") - {chosen})
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}


def test_2020_export_for_pairs(contractor):
    project = ProjectFactory(k=2)
    comparisons_import(project=project, source=(FIXTURES / "comparisons_2020.jsonl").read_bytes())
    rows = list(labels_export_rows(project=project, layout="2020"))
    assert [(r["info"]["id"], r["choice"], r["worker"], r["split"]) for r in rows] == [
        ("t3_abc", 0, "w1", "train"), ("t3_abc", 1, "w2", "train"), ("cnn_1", 0, "w1", "valid2")]
    assert rows[0]["summaries"] == [{"text": " Job offer, move?", "policy": "sup2"}, {"text": " Moving question.", "policy": "ref"}]
    assert rows[0]["batch"] == "batch9"


def test_2020_export_refuses_k_over_2(project):
    with pytest.raises(InvalidInput, match='has K=4. Export "2019"'):
        labels_export_rows(project=project, layout="2020")


def test_unknown_layout_is_refused(project):
    with pytest.raises(InvalidInput, match="layout must be one of"):
        labels_export_rows(project=project, layout="csv")


def test_split_filter(project, contractor):
    comparisons_import(project=project, source=b"".join(
        json.dumps({"query": f"q{i}", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d", "best": 0,
                    "split": split}).encode() + b"\n" for i, split in enumerate(["train", "valid", "valid"])))
    assert [r["query"] for r in labels_export_rows(project=project, layout="2019", split="valid")] == ["q1", "q2"]


def test_export_reads_in_a_constant_number_of_queries(project, contractor, other_contractor, django_assert_num_queries):
    """Streaming reads in chunks: labels, then their samples prefetched; not one query per label."""
    for _ in range(3):
        make_comparison(project, labels_wanted=2)
    for _ in range(3):
        _answer(project, contractor, 0)
        _answer(project, other_contractor, 1)
    with django_assert_num_queries(2):
        rows = list(labels_export_rows(project=project, layout="2019"))
    assert len(rows) == 6


# ---------------------------------------------------------------- round trips


def test_round_trip_of_imported_labels():
    """Import (2019) → export (2019) gives back the same queries, samples and chosen indices."""
    project = ProjectFactory(k=4)
    source = (FIXTURES / "comparisons_2019_k4.jsonl").read_bytes()
    comparisons_import(project=project, source=source, tokenizer=tokenizer_load("bytes"))
    decoded = tokenizer_load("bytes")
    expected = []
    for line in source.decode().splitlines():
        row = json.loads(line)
        if "best" not in row:
            continue  # unlabeled questions have no answer to export
        texts = [v if isinstance(v, str) else decoded.decode(v) for v in (row["query"], *[row[f"sample{i}"] for i in range(4)])]
        expected.append((texts[0], tuple(texts[1:]), row["best"]))
    exported = [_core(r, 4) for r in labels_export_rows(project=project, layout="2019")]
    assert exported == expected


def test_round_trip_of_labels_from_label_submit(project, contractor, other_contractor):
    """Labels made through label_submit export, re-import into a fresh project and export identically."""
    for _ in range(3):
        make_comparison(project, labels_wanted=2)
    for position in (0, 1, 3):
        _answer(project, contractor, position)
        _answer(project, other_contractor, 3 - position)
    first = "".join(labels_export_jsonl(project=project, layout="2019"))

    fresh = ProjectFactory(k=4, labels_per_comparison=2)
    comparisons_import(project=fresh, source=first.encode(), labelers_existing=[contractor.username,
                                                                                 other_contractor.username])
    second = "".join(labels_export_jsonl(project=fresh, layout="2019"))

    def core(text):
        return [(*_core(r, 4), r["labeler"], r["split"]) for r in map(json.loads, text.splitlines())]

    assert core(second) == core(first)
    assert len(core(first)) == 6
    # Two labelers per comparison came back as two labels on one comparison, as they were made.
    assert Comparison.objects.filter(project=fresh).count() == 3
    assert set(Comparison.objects.filter(project=fresh).values_list("label_count", "open_slots")) == {(2, 0)}


# ---------------------------------------------------------------- command


def test_export_command_to_stdout_and_file(project, contractor, tmp_path):
    make_comparison(project)
    _answer(project, contractor, 0)
    out = StringIO()
    call_command("export_labels", project.slug, "--layout", "pairs", stdout=out)
    assert len(out.getvalue().splitlines()) == 3
    target = tmp_path / "labels.jsonl"
    call_command("export_labels", project.slug, "--output", str(target), stderr=StringIO())
    assert json.loads(target.read_text())["best"] == Label.objects.get().chosen_index


def test_export_command_refuses_2020_for_k4(project):
    with pytest.raises(CommandError, match="2020 layout holds pairs"):
        call_command("export_labels", project.slug, "--layout", "2020", stdout=StringIO())
