"""Migration 0014: every sample's `text_length` is its text's length in characters, kept by the database, for the
samples written before it and for those written after, through the ORM or bulk SQL alike."""
import pytest
from django.db import connection

from labeling.models import Query, Sample
from tests.labeling.migrations.helpers import at_migration

BEFORE = [("labeling", "0013_label_ranking_likert_none")]
TEXTS = ["", "plain", "café → 😀", "x" * 5000]  # characters, not bytes; a long text the database may compress


@pytest.mark.django_db(transaction=True)
def test_lengths_are_characters_for_old_and_new_samples():
    with at_migration(BEFORE) as old:
        project = old.get_model("labeling", "Project").objects.create(name="Old", slug="old", k=2)
        query = old.get_model("labeling", "Query").objects.create(project=project, context="c")
        before = [old.get_model("labeling", "Sample").objects.create(query=query, text=t, source="p").id for t in TEXTS]
    assert [Sample.objects.get(id=i).text_length for i in before] == [len(t) for t in TEXTS]
    query = Query.objects.get(id=query.id)
    created = Sample.objects.create(query=query, text="naïve", source="p")
    assert created.text_length == 5  # read back on save
    Sample.objects.bulk_create([Sample(query=query, text=t, source="bulk") for t in TEXTS])
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {Sample._meta.db_table} (query_id, text, source, generation_params, created_at)"
                       " VALUES (%s, %s, 'sql', '{}', CURRENT_TIMESTAMP)", [query.id, "ü" * 7])
    assert list(Sample.objects.filter(source="bulk").values_list("text_length", flat=True)) == [len(t) for t in TEXTS]
    assert Sample.objects.get(source="sql").text_length == 7
    created.text = "longer now"
    created.save()
    created.refresh_from_db()
    assert created.text_length == 10
