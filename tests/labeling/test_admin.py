"""Django admin of the labeling app (labeling/admin.py): every model is there, pages render, evidence is read-only."""
import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from labeling.models import (
    Assignment,
    Comparison,
    GoldAnswer,
    Import,
    Instructions,
    InstructionsAck,
    Label,
    LabelerStanding,
    Project,
    QualificationAttempt,
    Query,
    Sample,
    SampleFlag,
    StandingChange,
)
from labeling.services import (
    FlagInput,
    LabelInput,
    comparison_next_for_labeler,
    instructions_acknowledge,
    instructions_publish,
    label_submit,
)
from labeling.services.simulation import LabelerSpec, simulated_labelers_ensure
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db

EVIDENCE = [Label, Assignment, SampleFlag, InstructionsAck, Instructions, Import, GoldAnswer, LabelerStanding,
            StandingChange, QualificationAttempt]


@pytest.fixture
def world(project, contractor):
    """One row of every labeling model: a submitted label with a flag under acknowledged instructions."""
    instructions = instructions_publish(project=project, body="Pick the best.")
    instructions_acknowledge(instructions=instructions, user=contractor)
    make_comparison(project)
    lease = comparison_next_for_labeler(project=project, labeler=contractor)
    label_submit(assignment_id=lease.id, labeler=contractor,
                 answer=LabelInput(position=2, duration_ms=900, flags=[FlagInput(position=0, note="off topic")]))
    simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1)])
    record = Import.objects.create(project=project, kind=Import.Kind.COMPARISONS, layout="2019", file_name="old.jsonl",
                                   sha256="0" * 64)
    record.accounts_existing.add(contractor)
    # Labelers' trust: a gold answer, a standing with its change, a qualification attempt.
    GoldAnswer.objects.create(comparison=Comparison.objects.get(), chosen_index=0, note="the first is kinder")
    standing = LabelerStanding.objects.create(project=project, labeler=contractor,
                                              status=LabelerStanding.Status.QUALIFIED, reason="admitted by hand")
    StandingChange.objects.create(standing=standing, status=standing.status, reason="admitted by hand")
    QualificationAttempt.objects.create(project=project, labeler=contractor, number=1, items=5)
    return project


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:labeling_{model._meta.model_name}_{view}", args=args)


def test_every_labeling_model_is_registered():
    models = set(apps.get_app_config("labeling").get_models())
    assert models and models <= set(admin.site._registry)


@pytest.mark.parametrize("model", list(apps.get_app_config("labeling").get_models()), ids=lambda m: m.__name__)
def test_changelist_search_and_change_pages_render(world, staff, model):
    """Each model's list (with a search), and the page of one object, render for an admin."""
    assert staff.get(_url(model, "changelist")).status_code == 200
    assert staff.get(_url(model, "changelist"), {"q": "sample"}).status_code == 200
    obj = model.objects.first()
    assert obj is not None
    assert staff.get(_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("model", EVIDENCE, ids=lambda m: m.__name__)
def test_evidence_cannot_be_added_changed_or_deleted(world, staff, model):
    obj = model.objects.first()
    before = list(model.objects.values())
    assert staff.get(_url(model, "add")).status_code == 403
    assert staff.post(_url(model, "change", obj.pk), {}).status_code == 403
    assert staff.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert list(model.objects.values()) == before


def test_label_page_shows_the_answer_without_a_form_to_change_it(world, staff):
    label = Label.objects.get()
    html = staff.get(_url(Label, "change", label.pk)).content.decode()
    assert 'name="chosen_index"' not in html
    assert "off topic" in html  # the flag inline, read-only
    assert staff.post(_url(Label, "change", label.pk), {"chosen_index": 0, "duration_ms": 1}).status_code == 403
    label.refresh_from_db()
    assert label.chosen_index == label.assignment.display_order[2]


def test_comparison_counters_and_project_k_are_read_only(world, staff):
    comparison = Comparison.objects.get()
    html = staff.get(_url(Comparison, "change", comparison.pk)).content.decode()
    for counter in ("label_count", "open_slots", "labels_wanted"):
        assert f'name="{counter}"' not in html
    assert 'name="status"' in html  # withdrawing by hand stays possible
    assert 'name="project"' in html and "vForeignKeyRawIdAdminField" in html  # big foreign keys as raw ids
    project_html = staff.get(_url(Project, "change", world.pk)).content.decode()
    assert 'name="k"' not in project_html
    assert 'name="name"' in project_html


def test_list_filters_work(world, staff):
    response = staff.get(_url(Label, "changelist"), {"skipped__exact": "0", "comparison__project__id__exact": world.pk})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    response = staff.get(_url(Comparison, "changelist"), {"status__exact": Comparison.objects.get().status})
    assert response.context["cl"].result_count == 1


def test_search_finds_queries_and_samples(world, staff):
    query = Query.objects.get()
    sample = Sample.objects.first()
    assert staff.get(_url(Query, "changelist"), {"q": query.context[:10]}).context["cl"].result_count == 1
    # Quoted: one phrase, not words ("sample 1 of query 10" would match a lone "0" in another sample).
    assert staff.get(_url(Sample, "changelist"), {"q": f'"{sample.text.strip()}"'}).context["cl"].result_count == 1


@pytest.mark.parametrize("role", ["contractor", "researcher"])
def test_non_staff_roles_are_sent_to_the_admin_login(world, client, contractor, researcher, role):
    client.force_login({"contractor": contractor, "researcher": researcher}[role])
    response = client.get(_url(Label, "changelist"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_simulated_labeler_temperature_is_editable_but_not_its_account_or_kind(world, staff):
    from labeling.models import SimulatedLabeler

    labeler = SimulatedLabeler.objects.get()
    assert staff.get(_url(SimulatedLabeler, "add")).status_code == 403
    html = staff.get(_url(SimulatedLabeler, "change", labeler.pk)).content.decode()
    assert 'name="temperature"' in html and 'name="user"' not in html and 'name="kind"' not in html
    response = staff.post(_url(SimulatedLabeler, "change", labeler.pk), {"temperature": "0.7", "seed": "5"})
    assert response.status_code == 302
    labeler.refresh_from_db()
    assert (labeler.temperature, labeler.seed, labeler.kind) == (0.7, 5, "sentiment")
