"""The cord through the web: pulled on the comparison a labeler was shown, resolved by an admin, and shown on the
run pages (quarantine, what stopped a run, the heartbeat's age) in the part of the page that polls."""
import pytest
from django.urls import reverse

from labeling.models import Comparison
from labeling.services import comparison_next_for_labeler
from training.models import AndonPull, TrainingRun
from tests.factories import UserFactory
from tests.training.helpers import cord_scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project, contractor, other_contractor):
    world = cord_scenario(project, contractor)
    world["shown"] = comparison_next_for_labeler(project=project, labeler=other_contractor).comparison
    return world


def _pull(client, comparison, reason="the samples are all slurs"):
    url = reverse("training-andon-pull-comparison", kwargs={"comparison_id": comparison.id})
    return client.post(url, {"reason": reason}, HTTP_HX_REQUEST="true")


def test_the_labeling_page_pulls_the_cord_on_the_policy_it_shows(client, world, other_contractor):
    stranger = UserFactory(username="stranger", role="contractor")
    client.force_login(stranger)
    assert _pull(client, world["shown"]).status_code == 404
    client.force_login(other_contractor)
    response = _pull(client, world["shown"])
    assert response.status_code == 200 and response["HX-Trigger"] == "andon-pulled"
    assert f"checkpoint run{world['ppo1'].id}-step3".encode() in response.content
    pull = AndonPull.objects.get()
    assert pull.run == world["ppo1"] and pull.comparison == world["shown"]
    assert not Comparison.objects.filter(id__in=[c.id for c in world["comparisons"]], status="active").exists()


def test_only_admins_resolve_and_a_dismissal_returns_the_comparisons(client, world, other_contractor, researcher,
                                                                      admin_user):
    client.force_login(other_contractor)
    _pull(client, world["shown"])
    pull = AndonPull.objects.get()
    url = reverse("training-andon-resolve", kwargs={"pull_id": pull.id})
    client.force_login(researcher)
    assert client.post(url, {"resolution": "dismissed", "note": "fine"}).status_code == 404
    client.force_login(admin_user)
    assert client.post(url, {"resolution": "dismissed", "note": ""}, HTTP_HX_REQUEST="true").status_code == 400
    assert client.post(url, {"resolution": "dismissed", "note": "false alarm"}).status_code == 302
    assert set(Comparison.objects.filter(id__in=[c.id for c in world["comparisons"]])
               .values_list("status", flat=True)) == {"active"}


def test_a_quarantined_checkpoint_is_not_downloaded_and_the_pages_say_why(client, world, other_contractor,
                                                                          admin_user):
    client.force_login(other_contractor)
    _pull(client, world["shown"])
    pull = AndonPull.objects.get()
    client.force_login(admin_user)
    download = reverse("training-checkpoint-download", kwargs={"checkpoint_id": world["checkpoint"].id})
    refused = client.get(download)
    assert refused.status_code == 409 and b"quarantined" in refused.content
    page = client.get(reverse("training-run-detail", kwargs={"run_id": world["ppo1"].id})).content
    assert f"Quarantined by andon pull {pull.id}".encode() in page
    assert reverse("training-andon-resolve", kwargs={"pull_id": pull.id}).encode() in page
    # The next round's fit is still running (stop requested): its polled part shows what stopped it, its
    # checkpoints and the heartbeat's age, not only the status line.
    fit2 = world["next_runs"][0]
    TrainingRun.objects.filter(id=fit2.id).update(heartbeat_at=pull.created_at)
    polled = client.get(reverse("training-run-detail", kwargs={"run_id": fit2.id}), HTTP_HX_REQUEST="true")
    assert polled.status_code == 200
    assert f"Stopped by the cord on <a href=\"/training/runs/{world['ppo1'].id}/\">".encode() in polled.content
    assert b"last heartbeat" in polled.content and b"<h2>Checkpoints</h2>" in polled.content
    client.post(reverse("training-andon-resolve", kwargs={"pull_id": pull.id}),
                {"resolution": "dismissed", "note": "false alarm"})
    assert client.get(download).status_code == 200
