"""The andon cord end to end from the labeling page: a contractor pulls it by its key (X) on a comparison of a
finished round while the next round runs; that round's runs stop, every comparison of the checkpoint leaves the
queue (the partly labeled one too), nobody is served one, and an admin's dismissal brings them back."""
import pytest

from labeling.models import Comparison
from labeling.roles import ADMIN, CONTRACTOR
from labeling.services import comparison_next_for_labeler
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory
from tests.training.helpers import cord_scenario
from training.models import AndonPull, TrainingRun
from training.services import andon_resolve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
Status = TrainingRun.Status


def test_cord_by_key_stops_the_next_round_and_withdraws_the_checkpoints_comparisons(live_server, page):
    project = ProjectFactory(k=4, slug="cord-e2e", calibration_share=0.0)
    first_labeler = UserFactory(username="first", role=CONTRACTOR)
    world = cord_scenario(project, first_labeler)
    puller = UserFactory(username="puller", role=CONTRACTOR)
    login(page, live_server.url, "puller", "pw-for-tests-123")
    page.goto(f"{live_server.url}/projects/cord-e2e/label/")
    page.locator("#label-form").wait_for()
    page.wait_for_load_state()
    page.focus("#label-form")
    page.keyboard.press("x")
    dialog = page.locator("#andon-dialog")
    dialog.and_(page.locator("[open]")).wait_for()
    page.keyboard.type("every sample is a slur")
    dialog.locator("button[type=submit]").click()
    page.get_by_text("Nothing left to label").wait_for()

    pull = AndonPull.objects.get()
    assert pull.pulled_by == puller and pull.run_id == world["ppo1"].id
    assert pull.source == f"run{world['ppo1'].id}-step3"
    statuses = [TrainingRun.objects.get(id=r.id).status for r in world["next_runs"]]
    assert statuses == [Status.STOP_REQUESTED, Status.STOPPED, Status.STOPPED]
    ids = [c.id for c in world["comparisons"]]
    assert set(Comparison.objects.filter(id__in=ids).values_list("status", flat=True)) == {"withdrawn"}
    other = UserFactory(username="other", role=CONTRACTOR)
    assert comparison_next_for_labeler(project=project, labeler=other) is None

    admin = UserFactory(username="boss", role=ADMIN, is_staff=True, is_superuser=True)
    andon_resolve(pull=pull, user=admin, resolution="dismissed", note="the samples were fine")
    assert comparison_next_for_labeler(project=project, labeler=other).comparison_id in ids
