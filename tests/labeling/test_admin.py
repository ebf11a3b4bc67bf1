"""Django admin: every labeling model is registered and its pages load; labels are evidence, read-only."""
import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from labeling.models import Comparison, Label, SampleFlag
from labeling.services import (
    FlagInput,
    LabelInput,
    comparison_next_for_labeler,
    instructions_acknowledge,
    instructions_publish,
    label_submit,
)
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(project, contractor):
    instructions = instructions_publish(project=project, body="Rules.")
    instructions_acknowledge(instructions=instructions, user=contractor)
    make_comparison(project)
    lease = comparison_next_for_labeler(project=project, labeler=contractor)
    label, _ = label_submit(assignment_id=lease.id, labeler=contractor, now=timezone.now(),
                            answer=LabelInput(position=1, duration_ms=10, flags=[FlagInput(position=0, note="typo")]))
    return label


def test_every_labeling_model_is_registered():
    models = set(apps.get_app_config("labeling").get_models())
    assert models - set(admin.site._registry) == set()


@pytest.mark.parametrize("model", [m._meta.model_name for m in apps.get_app_config("labeling").get_models()])
def test_changelist_and_change_pages_load(client, admin_user, labeled, model):
    client.force_login(admin_user)
    changelist = client.get(reverse(f"admin:labeling_{model}_changelist"), {"q": "a"})
    assert changelist.status_code == 200
    obj = apps.get_model("labeling", model).objects.first()
    assert client.get(reverse(f"admin:labeling_{model}_change", args=[obj.pk])).status_code == 200


def test_labels_cannot_be_edited_added_or_deleted(client, admin_user, labeled):
    client.force_login(admin_user)
    url = reverse("admin:labeling_label_change", args=[labeled.pk])
    original = labeled.chosen_index
    page = client.get(url).content.decode()
    assert 'name="chosen_index"' not in page  # shown, not an input
    assert client.post(url, {"chosen_index": 3 - original, "duration_ms": 1}).status_code == 403
    labeled.refresh_from_db()
    assert labeled.chosen_index == original
    assert client.get(reverse("admin:labeling_label_add")).status_code == 403
    assert client.post(reverse("admin:labeling_label_delete", args=[labeled.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:labeling_sampleflag_add")).status_code == 403
    assert Label.objects.count() == 1 and SampleFlag.objects.count() == 1


def test_comparison_counters_are_read_only(client, admin_user, labeled):
    client.force_login(admin_user)
    comparison = labeled.comparison
    page = client.get(reverse("admin:labeling_comparison_change", args=[comparison.pk])).content.decode()
    for counter in ("label_count", "open_slots", "labels_wanted"):
        assert f'name="{counter}"' not in page
    assert 'name="status"' in page  # withdrawing by hand stays possible
    assert Comparison.objects.get().label_count == 1


def test_admin_pages_refuse_contractors(client, contractor):
    client.force_login(contractor)
    response = client.get(reverse("admin:labeling_label_changelist"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
