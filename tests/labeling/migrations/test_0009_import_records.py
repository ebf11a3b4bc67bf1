"""Migration 0009 (import records) keeps the labels and comparisons written before it, with no import."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labeling.models import Comparison, Label
from tests.labeling.migrations.helpers import at_migration

BEFORE = [("labeling", "0008_label_display_position")]
AFTER = [("labeling", "0009_import_records")]


@pytest.mark.django_db(transaction=True)
def test_old_labels_survive_with_no_import():
    with at_migration(BEFORE) as old:
        user = old.get_model("auth", "User").objects.create(username="old-labeler", password="!")
        project = old.get_model("labeling", "Project").objects.create(name="Old", slug="old", k=2)
        query = old.get_model("labeling", "Query").objects.create(project=project, context="c")
        comparison = old.get_model("labeling", "Comparison").objects.create(project=project, query=query,
                                                                               label_count=1, open_slots=0)
        assignment = old.get_model("labeling", "Assignment").objects.create(
            comparison=comparison, labeler=user, display_order=[0, 1], leased_at="2020-01-01T00:00Z",
            expires_at="2020-01-01T00:00Z", state="submitted")
        label = old.get_model("labeling", "Label").objects.create(
            assignment=assignment, comparison=comparison, labeler=user, chosen_index=1, duration_ms=0)
    assert Label.objects.get(id=label.id).source_import_id is None
    assert Comparison.objects.get(id=comparison.id).source_import_id is None
    assert AFTER[0] in MigrationExecutor(connection).loader.applied_migrations
