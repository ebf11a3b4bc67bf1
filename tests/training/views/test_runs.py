"""Run pages, the andon cord through the web, and admin actions."""
import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Comparison
from labeling.services import comparison_next_for_labeler
from training.models import AndonPull, TrainingRun
from training.services import run_claim, run_metrics_record
from tests.factories import TrainingRunFactory, make_comparison

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def running(project):
    run = TrainingRunFactory(project=project, total_steps=10)
    run_claim(run_id=run.id, owner="w1")
    return run


def _detail(client, run, **extra):
    return client.get(reverse("training-run-detail", kwargs={"run_id": run.id}), **extra)


def test_researcher_sees_charts_and_partial_polls(client, researcher, running):
    run_metrics_record(run_id=running.id, step=1, metrics={"objective/kl": 0.5, "objective/score": 0.1})
    run_metrics_record(run_id=running.id, step=2, metrics={"objective/kl": 0.7, "objective/score": float("nan")})
    client.force_login(researcher)
    full = _detail(client, running)
    assert full.status_code == 200 and b"<svg" in full.content and b"objective/kl" in full.content
    partial = _detail(client, running, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b'hx-trigger="every 2s"' in partial.content and b"<html" not in partial.content


def test_polling_stops_when_the_run_ends(client, researcher, running):
    TrainingRun.objects.filter(id=running.id).update(status=Status.FINISHED)
    client.force_login(researcher)
    response = _detail(client, running, HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert b"hx-trigger" not in response.content


def test_contractor_sees_only_runs_served_to_them(client, contractor, project, running):
    client.force_login(contractor)
    assert _detail(client, running).status_code == 404
    comparison = make_comparison(project)
    Comparison.objects.filter(id=comparison.id).update(source_run=running)
    comparison_next_for_labeler(project=project, labeler=contractor)
    assert _detail(client, running).status_code == 200


def test_contractor_pulls_the_cord_from_the_labeling_page(client, contractor, project, running):
    comparison = make_comparison(project)
    Comparison.objects.filter(id=comparison.id).update(source_run=running)
    client.force_login(contractor)
    page = client.get(reverse("labeling-compare", kwargs={"slug": project.slug}))
    url = reverse("training-andon-pull-comparison", kwargs={"comparison_id": comparison.id})
    assert b"Stop this policy" in page.content and url.encode() in page.content
    missing = client.post(url, {"reason": ""}, HTTP_HX_REQUEST="true")
    assert missing.status_code == 400 and not AndonPull.objects.exists()
    response = client.post(url, {"reason": "the samples are all slurs"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Trigger"] == "andon-pulled"
    running.refresh_from_db()
    assert running.status == Status.STOP_REQUESTED
    pull = AndonPull.objects.get()
    assert pull.pulled_by == contractor and pull.comparison_id == comparison.id and pull.run_id == running.id
    again = client.get(reverse("labeling-compare", kwargs={"slug": project.slug}), HTTP_HX_REQUEST="true")
    assert b"Nothing left to label" in again.content


def test_andon_post_needs_csrf(contractor, researcher, running):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    response = client.post(reverse("training-andon-pull", kwargs={"run_id": running.id}), {"reason": "x"})
    assert response.status_code == 403
    assert not AndonPull.objects.exists()


def test_only_admins_see_and_use_resume_and_abort(client, researcher, admin_user, running):
    client.force_login(researcher)
    abort = reverse("training-run-action", kwargs={"run_id": running.id, "action": "abort"})
    assert abort.encode() not in _detail(client, running).content
    assert client.post(abort).status_code == 403
    client.force_login(admin_user)
    assert abort.encode() in _detail(client, running).content
    assert client.post(abort).status_code == 302
    running.refresh_from_db()
    assert running.status == Status.ABORTED


def test_checkpoint_download_refuses_paths_outside_artifacts(client, researcher, running, tmp_path):
    from training.models import Checkpoint

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    checkpoint = Checkpoint.objects.create(run=running, step=1, path=str(outside), sha256="0" * 64)
    client.force_login(researcher)
    response = client.get(reverse("training-checkpoint-download", kwargs={"checkpoint_id": checkpoint.id}))
    assert response.status_code == 404


def test_round_start_needs_labels(client, researcher, project):
    client.force_login(researcher)
    response = client.post(reverse("training-round-start", kwargs={"slug": project.slug}))
    assert response.status_code == 400
    assert not TrainingRun.objects.exists()


def test_contractor_cannot_open_project_runs(client, contractor, project):
    client.force_login(contractor)
    assert client.get(reverse("training-project-runs", kwargs={"slug": project.slug})).status_code == 403
    assert client.get(reverse("training-project-runs", kwargs={"slug": "no-such"})).status_code == 403


def test_reward_fit_page_shows_what_each_split_gave_and_why_the_rest_was_left_out(client, researcher):
    from labeling.models import Query
    from tests.factories import ProjectFactory, UserFactory, make_label
    from training.selectors import reward_fit_data

    project = ProjectFactory(k=2)
    labelers = [UserFactory(username=f"fit-page-{i}") for i in range(3)]
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        for _ in range(n):
            comparison = make_comparison(project)
            Query.objects.filter(id=comparison.query_id).update(split=split)
            for labeler in labelers[:2]:
                make_label(comparison, labeler, chosen_index=0)
    make_label(make_comparison(project, is_calibration=True), researcher, chosen_index=1)
    make_label(comparison, labelers[2], chosen_index=None)  # skipped, on the test comparison
    report = reward_fit_data(project=project, max_label_id=None).report
    report["parts"].append({"part": "<b>odd</b>", "use": "left out: unknown split", "comparisons": 1, "labels": 1,
                            "skipped": 0, "after_snapshot": 0})
    run = TrainingRunFactory(project=project, kind="fit_reward", status=Status.FINISHED,
                             report={"reward_data": {**report, "valid_accuracy": 0.75}})
    client.force_login(researcher)
    page = _detail(client, run).content.decode()
    assert "Reward-model data" in page and "Trained on 6 labels of train-split comparisons" in page
    rows = {row.split("</td>")[0]: row for row in page.split("<tr><td>")[1:]}
    assert "<td>3</td><td>6</td><td>trained on</td>" in rows["train"]
    assert "<td>2</td><td>4</td><td>held-out accuracy only (reward/valid_accuracy): accuracy 0.750" in rows["valid"]
    assert "<td>1</td><td>2</td><td>left out: test split, kept for final evaluations</td><td>1</td>" in rows["test"]
    assert "<td>1</td><td>1</td><td>left out: calibration" in rows["calibration"]
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd</b>" not in page  # report text stays inert
    assert "Experiment results" not in page
