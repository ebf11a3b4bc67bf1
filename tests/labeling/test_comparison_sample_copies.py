"""ComparisonSample's copies of its sample's source and text length (labeling/models.py, read by the leaderboard
instead of joining every sample): each writer fills them with the sample's own values, a writer that does not
is refused by the database, and migration 0015 fills them for the rows written before it."""
import json

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from labeling.models import Comparison, ComparisonSample, Sample
from labeling.services import comparisons_import
from labeling.services.qualification import qualification_item_add
from tests.factories import ProjectFactory, make_comparison, make_label
from tests.labeling.migrations.helpers import at_migration

TEXTS = ["", " café → 😀", " plain", " " + "x" * 3000]  # characters, not bytes


def _mismatched():
    """Rows whose copies differ from their sample (either field)."""
    return ComparisonSample.objects.exclude(sample_source=F("sample__source"),
                                            sample_text_length=F("sample__text_length"))


@pytest.mark.django_db
def test_every_writer_copies_the_samples_source_and_length(researcher):
    project = ProjectFactory(k=4)
    made = make_comparison(project, is_calibration=True, texts=TEXTS)  # comparison_create
    line = {"query": "q", **{f"sample{j}": text for j, text in enumerate(reversed(TEXTS))}, "best": 1}
    comparisons_import(project=project, source=(json.dumps(line) + "\n").encode())  # the import's bulk writer
    make_label(made, researcher, chosen_index=2)
    copy = qualification_item_add(project=project, comparison_id=made.id, by=researcher)  # copies the rows
    assert Comparison.objects.count() == 3 and ComparisonSample.objects.count() == 12
    assert not _mismatched().exists()
    rows = list(ComparisonSample.objects.filter(comparison=copy).order_by("position")
                .values_list("sample_source", "sample_text_length"))
    sources = [e.sample.source for e in made.entries.order_by("position")]
    assert rows == [(source, len(text)) for source, text in zip(sources, TEXTS)] and all(sources)
    imported = ComparisonSample.objects.exclude(comparison__in=[made, copy]).order_by("position")
    assert [e.sample_text_length for e in imported] == [len(text) for text in reversed(TEXTS)]
    assert {e.sample_source for e in imported} == {"imported"}


@pytest.mark.django_db
def test_a_writer_that_leaves_the_copies_out_is_refused():
    made = make_comparison(ProjectFactory(k=2))
    sample = Sample.objects.create(query=made.query, text=" one more", source="p")
    with pytest.raises(IntegrityError), transaction.atomic():
        ComparisonSample.objects.create(comparison=made, sample=sample, position=2)
    assert ComparisonSample.objects.filter(comparison=made).count() == 2


@pytest.mark.django_db(transaction=True)
def test_migration_0015_fills_the_copies_of_earlier_rows():
    with at_migration([("labeling", "0014_sample_text_length")]) as old:
        project = old.get_model("labeling", "Project").objects.create(name="Old", slug="old", k=2)
        query = old.get_model("labeling", "Query").objects.create(project=project, context="c")
        samples = [old.get_model("labeling", "Sample").objects.create(query=query, text=t, source=f"p{i}")
                   for i, t in enumerate(TEXTS)]
        comparisons = [old.get_model("labeling", "Comparison").objects.create(
            project=project, query=query, labels_wanted=1, open_slots=1) for _ in range(2)]
        old.get_model("labeling", "ComparisonSample").objects.bulk_create(
            old.get_model("labeling", "ComparisonSample")(comparison=c, sample=s, position=p)
            for c, pair in zip(comparisons, (samples[:2], samples[2:])) for p, s in enumerate(pair))
    rows = list(ComparisonSample.objects.order_by("comparison_id", "position")
                .values_list("sample_source", "sample_text_length"))
    assert rows == [(f"p{i}", len(t)) for i, t in enumerate(TEXTS)]
