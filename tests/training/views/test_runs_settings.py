"""A round's settings on the rounds page (with one-round overrides), a run's settings and the diff of two runs."""
import json

import pytest
from django.test import Client
from django.urls import reverse

from training.models import Round, TrainingRun
from tests.factories import ProjectFactory, TrainingRunFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(project, contractor):
    for _ in range(3):
        make_label(make_comparison(project), contractor, chosen_index=0)
    project.training_settings = {"reward": {"lr": 1e-4}, "ppo": {"total_episodes": 256}}
    project.save()
    return project


def _start(client, project, **data):
    return client.post(reverse("training-round-start", kwargs={"slug": project.slug}), data)


def test_rounds_page_shows_the_settings_a_round_will_use_and_links_the_settings(client, researcher, labeled):
    client.force_login(researcher)
    html = client.get(reverse("training-project-runs", kwargs={"slug": labeled.slug})).content.decode()
    assert reverse("training-settings", kwargs={"slug": labeled.slug}) in html
    assert "<code>lr = 0.0001</code>" in html and "<code>total_episodes = 256</code>" in html
    assert "<code>response_length = 24</code>" in html  # the task, filled into each section
    assert 'placeholder="256"' in html  # an override field shows the project's value


def test_overrides_are_used_by_the_started_round(client, researcher, labeled):
    client.force_login(researcher)
    response = _start(client, labeled, reward__lr="0.002", ppo__kl_coef="0.05",
                      overrides=json.dumps({"sample": {"n_queries": 4}}))
    assert response.status_code == 302
    fit, ppo, sample = Round.objects.get(project=labeled).runs.order_by("id")
    assert response["Location"] == reverse("training-run-detail", kwargs={"run_id": fit.id})
    assert fit.config["lr"] == 0.002
    assert ppo.config["kl_coef"] == 0.05 and ppo.config["total_episodes"] == 256  # the project's, kept
    assert sample.config["n_queries"] == 4
    assert labeled.training_settings == {"reward": {"lr": 1e-4}, "ppo": {"total_episodes": 256}}  # one round only
    page = client.get(reverse("training-run-detail", kwargs={"run_id": fit.id})).content.decode()
    assert "<code>config.lr</code></th><td><code>0.002</code>" in page


def test_bad_overrides_show_beside_their_field_and_start_nothing(client, researcher, labeled):
    client.force_login(researcher)
    response = _start(client, labeled, ppo__total_episodes="0", overrides=json.dumps({"ppo": {"kl_coeff": 0.1},
                                                                               "tripwires": {"kl_max": 1}}))
    assert response.status_code == 400
    form = response.context["start_form"]
    assert form.errors["ppo__total_episodes"] == ["total_episodes must be >= 1, got 0"]  # the library's check
    messages = " ".join(form.errors["overrides"])
    assert "did you mean 'kl_coef'" in messages and "tripwires are the project's" in messages
    broken = _start(client, labeled, overrides="[1, 2]")
    assert broken.status_code == 400 and "must be a JSON object" in broken.context["start_form"].errors["overrides"][0]
    assert not TrainingRun.objects.exists()


def test_a_field_and_the_json_box_may_not_both_set_one_key(client, researcher, labeled):
    client.force_login(researcher)
    response = _start(client, labeled, reward__lr="0.002", overrides=json.dumps({"reward": {"lr": 0.003}}))
    assert response.status_code == 400 and "set it once" in response.context["start_form"].errors["reward__lr"][0]
    assert not TrainingRun.objects.exists()


def test_a_refused_round_start_shows_why_on_the_page(client, researcher, project):
    client.force_login(researcher)
    response = _start(client, project)
    assert response.status_code == 400 and b"no labels to train on" in response.content


def test_round_start_needs_the_csrf_token(researcher, labeled):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    assert _start(client, labeled).status_code == 403
    assert not TrainingRun.objects.exists()


def test_run_page_shows_its_settings_to_researchers_only(client, researcher, contractor, project):
    run = TrainingRunFactory(project=project, config={"lr": 1e-4}, product={"tripwires": {"kl_max": 30.0}})
    client.force_login(researcher)
    html = client.get(reverse("training-run-detail", kwargs={"run_id": run.id})).content.decode()
    assert "<code>product.tripwires.kl_max</code>" in html and 'id="compare-other"' in html
    client.force_login(contractor)
    assert client.get(reverse("training-run-detail", kwargs={"run_id": run.id})).status_code == 404


def test_diff_lists_the_settings_that_differ(client, researcher, project):
    a = TrainingRunFactory(project=project, config={"lr": 1e-4, "kl_coef": 0.2, "batch_size": 64}, seed=1)
    b = TrainingRunFactory(project=project, config={"lr": 2e-4, "batch_size": 64}, seed=1)
    c = TrainingRunFactory(project=project, config={"lr": 1e-4, "kl_coef": 0.05}, seed=2)
    client.force_login(researcher)
    response = client.get(reverse("training-run-diff", kwargs={"run_id": a.id, "other_id": b.id}))
    assert response.status_code == 200
    assert response.context["rows"] == [("config.lr", "0.0001", "0.0002")]  # kl_coef 0.2 is b's default too
    rows = client.get(reverse("training-run-diff", kwargs={"run_id": a.id, "other_id": c.id})).context["rows"]
    assert rows == [("config.kl_coef", "0.2", "0.05"), ("seed", "1", "2")]
    pick = client.get(reverse("training-run-diff-pick", kwargs={"run_id": a.id}), {"other": str(c.id)})
    assert pick.status_code == 302 and pick["Location"] == reverse("training-run-diff",
                                                                   kwargs={"run_id": a.id, "other_id": c.id})


def test_diff_is_404_across_projects_and_for_contractors(client, researcher, contractor, project):
    a = TrainingRunFactory(project=project)
    elsewhere = TrainingRunFactory(project=ProjectFactory())
    url = reverse("training-run-diff", kwargs={"run_id": a.id, "other_id": elsewhere.id})
    client.force_login(researcher)
    assert client.get(url).status_code == 404
    client.force_login(contractor)
    same = TrainingRunFactory(project=project)
    assert client.get(reverse("training-run-diff", kwargs={"run_id": a.id, "other_id": same.id})).status_code == 404
    assert client.get(reverse("training-run-diff-pick", kwargs={"run_id": a.id}), {"other": "1"}).status_code == 404
