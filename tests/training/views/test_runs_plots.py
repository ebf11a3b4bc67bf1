"""The experiment's section on the run page and its PNG plots: researchers only, paths from the database."""
import pytest
from django.urls import reverse

from training.models import TrainingRun
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


@pytest.fixture
def reported(project, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    folder = settings.ARTIFACTS_DIR / "runs" / "run-x" / "experiment"
    folder.mkdir(parents=True)
    (folder / "score_vs_kl.png").write_bytes(PNG)
    outside = tmp_path / "secret.png"
    outside.write_bytes(PNG)
    run = TrainingRunFactory(project=project, status=TrainingRun.Status.FINISHED)
    run.report = {"figures": {"labeler": "sentiment", "labels": 500, "win_rate": 0.61, "kl": 3.2},
                  "plots": {"score_vs_kl": str(folder / "score_vs_kl.png"), "rm_accuracy": str(outside)}}
    run.save()
    return run


def _plot(client, run, name):
    return client.get(reverse("training-run-plot", kwargs={"run_id": run.id, "name": name}))


def test_researcher_sees_figures_and_gets_the_recorded_png(client, researcher, reported):
    client.force_login(researcher)
    page = client.get(reverse("training-run-detail", kwargs={"run_id": reported.id}))
    assert b"Experiment results" in page.content and b"0.610" in page.content
    assert reverse("training-run-plot", kwargs={"run_id": reported.id, "name": "score_vs_kl"}).encode() in page.content
    response = _plot(client, reported, "score_vs_kl")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == PNG


def test_plots_outside_artifacts_unknown_names_and_other_roles_are_404(client, researcher, contractor, reported):
    client.force_login(researcher)
    assert _plot(client, reported, "rm_accuracy").status_code == 404  # recorded path lies outside ARTIFACTS_DIR
    assert _plot(client, reported, "results").status_code == 404
    client.force_login(contractor)
    assert _plot(client, reported, "score_vs_kl").status_code == 404


def test_an_ordinary_run_page_has_no_experiment_section(client, researcher, project):
    run = TrainingRunFactory(project=project)
    client.force_login(researcher)
    assert b"Experiment results" not in client.get(reverse("training-run-detail", kwargs={"run_id": run.id})).content
    assert _plot(client, run, "score_vs_kl").status_code == 404
