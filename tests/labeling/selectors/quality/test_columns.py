"""The dashboards' label columns (labeling/selectors/quality/columns.py) and the texts' figures behind the
length, copy and too-fast detectors: kept at write time, backfilled, filled when missing, refreshed on edits."""
import importlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from django.apps import apps
from django.db import connection
from django.urls import reverse

from labeling.models import Comparison, ComparisonSample, Label
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.selectors.quality import dashboard_cache_clear, labeler_detail, labelers_quality
from labeling.selectors.quality.columns import _copy_parse, _label_rows_fetch
from labeling.services import comparison_create, comparisons_import
from labeling.textstats import comparison_text_figures, text_figures_by_comparison
from tests.factories import QueryFactory, SampleFactory, UserFactory, make_comparison
from tests.labeling.quality_helpers import MONDAY, NEXT_TUESDAY, add_label

pytestmark = pytest.mark.django_db

CONTEXT = "the quick brown fox jumps over the lazy dog"
TEXTS = [" a new thing", " the quick brown fox jumps", "   padded   ", " over the lazy dog and more words here"]


def test_comparison_text_figures_by_hand():
    """Lengths (trimmed) 11, 25, 6, 37 → index 3 longest; 3-gram overlaps 0, 1, 0, 2/6 → index 1 copies
    most; chars = 43 + 12 + 26 + 12 + 38."""
    assert comparison_text_figures(CONTEXT, TEXTS) == (0b1000, 0b0010, 43 + 12 + 26 + 12 + 38)
    assert comparison_text_figures(CONTEXT, [" same", " same"]) == (0b11, 0b11, 43 + 10)  # ties: every index tied


def test_figures_of_a_comparison_without_k_samples_have_empty_masks():
    figures = text_figures_by_comparison([(7, 1, TEXTS[1]), (7, 0, TEXTS[0]), (8, 0, TEXTS[0])],
                                         {7: (CONTEXT, 2), 8: (CONTEXT, 2)})
    assert figures[7] == comparison_text_figures(CONTEXT, TEXTS[:2])  # positions put back in order
    assert figures[8] == (0, 0, len(CONTEXT) + len(TEXTS[0]))


def test_comparison_create_stores_the_figures(project):
    query = QueryFactory(project=project, context=CONTEXT)
    comparison = comparison_create(project=project, query=query, samples=[SampleFactory(query=query, text=t) for t in TEXTS])
    comparison.refresh_from_db()
    assert (comparison.length_top, comparison.copy_top, comparison.text_chars) == comparison_text_figures(CONTEXT, TEXTS)


def test_comparisons_import_stores_the_figures(project):
    line = {"query": CONTEXT, **{f"sample{i}": t for i, t in enumerate(TEXTS)}, "best": 1}
    comparisons_import(project=project, source=io.BytesIO((json.dumps(line) + "\n").encode()), name="c.jsonl")
    comparison = Comparison.objects.get(project=project)
    assert (comparison.length_top, comparison.copy_top, comparison.text_chars) == comparison_text_figures(CONTEXT, TEXTS)


def test_backfill_migration_computes_every_comparison(project):
    made = [make_comparison(project, texts=TEXTS) for _ in range(3)]
    Comparison.objects.update(length_top=None, copy_top=None, text_chars=None)
    migration = importlib.import_module("labeling.migrations.0007_comparison_text_figures")
    migration.backfill(apps, SimpleNamespace(connection=connection))
    for comparison in made:
        comparison.refresh_from_db()
        expected = comparison_text_figures(comparison.query.context, TEXTS)
        assert (comparison.length_top, comparison.copy_top, comparison.text_chars) == expected


def _hand_comparison(project, texts, **kwargs):
    query = QueryFactory(project=project, context=CONTEXT)
    return comparison_create(project=project, query=query, samples=[SampleFactory(query=query, text=t) for t in texts],
                             labels_wanted=4, **kwargs)


@pytest.fixture
def labeled(project):
    """Three labels with known columns: two answers (display orders reversed and rotated) and a skip.
    The second comparison has TEXTS reversed: index 0 longest, index 2 copies most."""
    a = UserFactory(username="col-a", role=CONTRACTOR)
    b = UserFactory(username="col-b", role=CONTRACTOR)
    first = _hand_comparison(project, TEXTS, is_calibration=True)
    second = _hand_comparison(project, TEXTS[::-1])
    rows = [
        add_label(first, a, 1, display_order=[3, 2, 1, 0], duration_ms=1500, unsure=True),
        add_label(first, b, None, duration_ms=900, at=NEXT_TUESDAY),
        add_label(second, a, 0, display_order=[1, 2, 3, 0], duration_ms=4000),
    ]
    return {"a": a, "b": b, "first": first, "second": second, "labels": rows}


def _expected_rows(labeled) -> list[tuple]:
    first, second = labeled["first"], labeled["second"]
    f1 = comparison_text_figures(first.query.context, TEXTS)
    f2 = (0b0001, 0b0100, f1[2])
    la, lb, lc = labeled["labels"]
    a, b = labeled["a"].id, labeled["b"].id
    monday, tuesday = MONDAY.date().toordinal(), NEXT_TUESDAY.date().toordinal()
    return [
        # id, labeler, comparison, chosen, position, unsure, skipped, ms, calibration, day, instructions, figures
        (la.id, a, first.id, 1, 2, 1, 0, 1500, 1, monday, -1, *f1),
        (lb.id, b, first.id, -1, -1, 0, 1, 900, 1, tuesday, -1, *f1),
        (lc.id, a, second.id, 0, 3, 0, 0, 4000, 0, monday, -1, *f2),
    ]


def _rows(cols) -> list[tuple]:
    from labeling.selectors.quality.columns import _Labels

    matrix = np.stack([getattr(cols, name).astype(np.int64) for name in _Labels.FETCHED], axis=1)
    return sorted(tuple(int(v) for v in row) for row in matrix)


@pytest.mark.usefixtures("dashboard_path")
def test_label_columns_by_hand(project, labeled):
    assert _rows(_label_rows_fetch(project)) == _expected_rows(labeled)
    newest = max(label.id for label in labeled["labels"][:2])
    assert _rows(_label_rows_fetch(project, newest)) == _expected_rows(labeled)[2:]  # only the newer rows


@pytest.mark.usefixtures("dashboard_path")
def test_missing_figures_are_computed_once_and_stored(project, labeled, django_assert_max_num_queries):
    before = {q.username: (q.length.observed, q.copy.observed, q.too_fast.observed, q.length.n)
              for q in labelers_quality(project)}
    stored = dict(Comparison.objects.values_list("id", "text_chars"))
    Comparison.objects.update(length_top=None, copy_top=None, text_chars=None)  # as rows written around the services
    dashboard_cache_clear()
    after = {q.username: (q.length.observed, q.copy.observed, q.too_fast.observed, q.length.n)
             for q in labelers_quality(project)}
    # a picked the most copying sample in 1.5 s (131 chars need 2.2 s), then the longest in 4 s
    assert after == before and before["col-a"] == (1, 1, 1, 2)
    assert dict(Comparison.objects.values_list("id", "text_chars")) == stored  # written back
    dashboard_cache_clear()
    with django_assert_max_num_queries(5):  # researchers, columns, flags, usernames, …: no fill any more
        labelers_quality(project)


@pytest.mark.usefixtures("dashboard_path")
def test_an_edited_sample_refreshes_the_figures_and_the_tables(client, admin_user, project, labeled):
    """The longest sample of the first comparison is index 3; an admin shortens it, and a's pick (index 1)
    becomes the longest: the next table read sees it (the columns' freshness check covers the figures)."""
    a = labeled["a"].id
    assert next(q for q in labelers_quality(project) if q.labeler_id == a).length.observed == 1
    longest = ComparisonSample.objects.get(comparison=labeled["first"], position=3).sample
    client.force_login(admin_user)
    response = client.post(reverse("admin:labeling_sample_change", args=[longest.id]),
                           {"query": longest.query_id, "text": " dog", "source": longest.source,
                            "generation_params": "{}", "tokens": "null"})
    assert response.status_code == 302, response.content[:2000]
    first = Comparison.objects.get(id=labeled["first"].id)
    assert first.length_top == 0b0010
    assert next(q for q in labelers_quality(project) if q.labeler_id == a).length.observed == 2


def test_an_edited_context_or_comparison_refreshes_the_figures(client, admin_user, project, labeled):
    """A context that now contains sample 0's words makes it the most copying; saving the comparison recomputes too."""
    first = Comparison.objects.get(id=labeled["first"].id)
    query = first.query
    client.force_login(admin_user)
    response = client.post(reverse("admin:labeling_query_change", args=[query.id]), {
        "project": project.id, "context": "a new thing indeed", "reference": "", "external_id": "", "split": "train",
        "samples-TOTAL_FORMS": "0", "samples-INITIAL_FORMS": "0", "samples-MIN_NUM_FORMS": "0",
        "samples-MAX_NUM_FORMS": "1000"})
    assert response.status_code == 302, response.content[:3000]
    first.refresh_from_db()
    assert first.copy_top == 0b0001
    assert first.text_chars == len("a new thing indeed") + sum(len(t) for t in TEXTS)
    Comparison.objects.filter(id=first.id).update(copy_top=0, text_chars=1)
    from django.contrib.admin.sites import site

    # Saving the comparison (its change form, here its admin's save step) recomputes from its samples.
    site._registry[Comparison].save_related(None, SimpleNamespace(instance=first, save_m2m=lambda: None), [], True)
    first.refresh_from_db()
    assert (first.copy_top, first.text_chars) == (0b0001, len("a new thing indeed") + sum(len(t) for t in TEXTS))


@pytest.mark.usefixtures("dashboard_path")
def test_drill_down_shows_each_samples_length_and_overlap_in_display_order(project, labeled):
    detail = labeler_detail(project, labeler_id=labeled["a"].id)
    shown = next(label for label in detail.labels if label.id == labeled["labels"][0].id)
    assert [s.canonical for s in shown.samples] == [3, 2, 1, 0]
    assert [s.letter for s in shown.samples] == ["A", "B", "C", "D"]
    assert [s.length for s in shown.samples] == [37, 6, 25, 11]
    assert shown.samples[2].overlap == 1.0 and shown.samples[3].overlap == 0.0
    assert shown.samples[0].overlap == pytest.approx(2 / 6)
    assert shown.chosen_letter == "C" and shown.created_at == MONDAY


def test_copy_stream_is_checked():
    with pytest.raises(ValueError, match="binary COPY"):
        _copy_parse(b"id\tlabeler\n1\t2\n")
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    row = (2).to_bytes(2, "big") + ((8).to_bytes(4, "big") + (5).to_bytes(8, "big")) * 2
    with pytest.raises(ValueError, match="field count"):
        _copy_parse(header + row + b"\xff\xff")


def test_researcher_answers_stay_researchers_only(client, project, labeled):
    """The drill-down still renders for a researcher and is forbidden to a contractor."""
    researcher = UserFactory(username="col-r", role=RESEARCHER)
    url = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": labeled["a"].id})
    client.force_login(labeled["b"])
    assert client.get(url).status_code == 403
    client.force_login(researcher)
    assert client.get(url).status_code == 200
    assert Label.objects.count() == 3


def test_display_position_backfill_migration(project, labeled):
    """Labels from before migration 0008 get display_order.index(chosen_index); skips stay NULL."""
    Label.objects.update(display_position=None)
    migration = importlib.import_module("labeling.migrations.0008_label_display_position")
    # What the backfill uses of a schema editor (SQLite allows no real one inside the test's transaction).
    editor = SimpleNamespace(connection=connection, execute=lambda sql: connection.cursor().execute(sql))
    migration.backfill(apps, editor)
    assert dict(Label.objects.values_list("id", "display_position")) == {
        label.id: position for label, position in zip(labeled["labels"], [2, None, 3], strict=True)}


@pytest.mark.usefixtures("dashboard_path")
def test_missing_display_positions_are_computed_and_stored(project, labeled):
    """Labels written around label_submit without a position: the table works them out once and stores them."""
    before = {q.username: q.position for q in labelers_quality(project)}
    Label.objects.update(display_position=None)
    dashboard_cache_clear()
    assert {q.username: q.position for q in labelers_quality(project)} == before
    assert before["col-a"].n == 2  # both of a's answers counted at their screen positions
    assert sorted(Label.objects.exclude(display_position=None).values_list("display_position", flat=True)) == [2, 3]


def test_researcher_answers_by_hand():
    """Comparison 1: researchers chose 0, 0, 2 → 0; each researcher is judged against the other two (0/2 tie → none
    for the two who chose 0; 0 for the one who chose 2). Comparison 2: researchers 1 and 3 tie → none; its one
    researcher judged against the other alone gets that other's choice. Comparison 3: no researcher → none."""
    from labeling.selectors.quality.common import researcher_answers, unique_argmax

    comparison = np.array([1, 1, 1, 1, 2, 2, 2, 3])
    chosen = np.array([0, 0, 2, 3, 1, 3, 1, 0])
    by_researcher = np.array([True, True, True, False, True, True, False, False])
    own, everyone = researcher_answers(comparison, chosen, by_researcher, 4)
    assert own.tolist() == [-1, -1, 0, 0, 3, 1, -1, -1]
    assert everyone.tolist() == [0, 0, 0, 0, -1, -1, -1, -1]
    assert unique_argmax(np.array([[0, 0, 0], [1, 2, 2], [0, 3, 1]])).tolist() == [-1, -1, 1]
