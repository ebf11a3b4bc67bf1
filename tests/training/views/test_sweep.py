"""The runs page's sweep section: the form (field errors, a started sweep), the chart PNG; researchers only."""
import pytest
from django.urls import reverse

from labeling.roles import RESEARCHER
from training.models import Round, RunMetric, TrainingRun
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, labeled_project

pytestmark = pytest.mark.django_db
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _urls(project, number=1):
    return {"section": reverse("training-sweep", kwargs={"slug": project.slug}),
            "start": reverse("training-sweep-start", kwargs={"slug": project.slug}),
            "chart": reverse("training-sweep-chart", kwargs={"slug": project.slug, "number": number})}


def test_the_runs_page_loads_the_section_and_the_form_starts_a_sweep(client, contractor):
    researcher = UserFactory(username="r-sweep-view", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=8, n_calibration=2)
    project.training_settings = {"reward": FAST_REWARD, "ppo": FAST_PPO, "sample": FAST_SAMPLE}
    project.save()
    urls = _urls(project)
    client.force_login(researcher)
    page = client.get(reverse("training-project-runs", kwargs={"slug": project.slug}))
    assert f'hx-get="{urls["section"]}"'.encode() in page.content
    section = client.get(urls["section"], HTTP_HX_REQUEST="true")
    assert b"Over-optimisation sweep" in section.content and b"No sweep yet" in section.content
    assert b'id="sweep-start-form"' in section.content and b"autofocus" not in section.content

    for betas, error in (("0.1, abc, 1", "&#x27;abc&#x27; is not a number."), ("0.1 0.2", "3 to 8 β values"),
                         ("0.1, 0, 1", "positive number"), ("", "This field is required.")):
        answer = client.post(urls["start"], {"betas": betas}, HTTP_HX_REQUEST="true")
        assert answer.status_code == 400, betas
        assert b'id="id_betas_error"' in answer.content and error.encode() in answer.content, answer.content
        assert b"autofocus" in answer.content
    assert not Round.objects.filter(project=project).exists()

    answer = client.post(urls["start"], {"betas": "0.5, 0.1 0.02"}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    rnd = Round.objects.get(project=project)
    assert rnd.sweep == {"betas": [0.5, 0.1, 0.02]}
    assert rnd.runs.filter(kind="ppo").count() == rnd.runs.filter(kind="sample").count() == 3
    assert f'id="sweep-{rnd.number}"'.encode() in answer.content and urls["chart"].encode() in answer.content
    # A second sweep while this one runs is refused beside the form.
    again = client.post(urls["start"], {"betas": "1 2 3"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and b"already running" in again.content
    assert Round.objects.filter(project=project).count() == 1


def test_the_chart_is_a_png_of_a_sweep_round_only(client, researcher):
    project = ProjectFactory(k=2)
    rnd = Round.objects.create(project=project, number=1, sweep={"betas": [0.1, 0.2, 0.4]})
    for beta, kl in ((0.1, 4.0), (0.2, 1.0), (0.4, 0.25)):
        ppo = TrainingRunFactory(project=project, round=rnd, kind="ppo", config={"kl_coef": beta})
        RunMetric.objects.create(run=ppo, step=2, key="objective/kl", value=kl)
        RunMetric.objects.create(run=ppo, step=2, key="objective/score", value=kl / 2)
    Round.objects.create(project=project, number=2)
    client.force_login(researcher)
    chart = client.get(_urls(project)["chart"])
    assert chart.status_code == 200 and chart["Content-Type"] == "image/png"
    assert chart.content.startswith(PNG_MAGIC) and len(chart.content) > 2000
    assert client.get(_urls(project, number=2)["chart"]).status_code == 404  # a plain round
    assert client.get(_urls(project, number=9)["chart"]).status_code == 404
    section = client.get(_urls(project)["section"])
    assert b"2.000" in section.content and b"0.500" in section.content  # √KL of 4.0 and of 0.25


def test_contractors_get_403_on_the_section_the_start_and_the_chart(client, contractor):
    project = ProjectFactory(k=2)
    Round.objects.create(project=project, number=1, sweep={"betas": [0.1, 0.2, 0.4]})
    urls = _urls(project)
    client.force_login(contractor)
    assert client.get(urls["section"]).status_code == 403
    assert client.get(urls["chart"]).status_code == 403
    assert client.post(urls["start"], {"betas": "0.1 0.2 0.3"}).status_code == 403
    assert Round.objects.filter(project=project).count() == 1 and not TrainingRun.objects.exists()
