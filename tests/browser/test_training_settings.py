"""A researcher edits the training settings by keyboard: a misspelt JSON key and an out-of-range value are
both refused beside their fields and nothing is saved; fixed, they save; then a round starts with a
one-round override that its run's config shows."""
import pytest

from labeling.models import Project
from labeling.roles import CONTRACTOR, RESEARCHER
from training.models import Round
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _replace(page, selector, text):
    page.focus(selector)
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(text)


def test_settings_refused_beside_fields_then_saved_and_a_round_starts_with_an_override(live_server, page,
                                                                                        monkeypatch):
    # The round's runs are queued, not trained, in this test: the page flow is what is under test.
    monkeypatch.setattr("training.services.runs.run_enqueue", lambda run_id: None)
    project = ProjectFactory(k=2, slug="tune")
    UserFactory(username="res", role=RESEARCHER)
    labeler = UserFactory(username="lab", role=CONTRACTOR)
    for _ in range(3):
        make_label(make_comparison(project), labeler, chosen_index=0)
    base = live_server.url
    login(page, base, "res")

    # From the project list to the settings page; the first field has the focus.
    page.locator("a", has_text="training settings").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/training/projects/tune/settings/")
    page.wait_for_load_state()
    assert page.evaluate("document.activeElement.id") == "id_base_model"

    # An out-of-range value in the form and a misspelt key in the JSON box; Ctrl+Enter saves.
    _replace(page, "#id_ppo__lam", "2")
    _replace(page, "#id_more", '{"ppo": {"kl_coeff": 0.1}}')
    page.keyboard.press("Control+Enter")
    page.locator("#id_ppo__lam_error").wait_for()
    assert "lam must be in [0, 1]" in page.inner_text("#id_ppo__lam_error")
    assert "did you mean 'kl_coef'" in page.inner_text("#id_ppo__kl_coef_error")
    assert "ppo.kl_coeff" in page.inner_text("#id_more_error")
    assert Project.objects.get(id=project.id).training_settings == {}
    # The first field with an error has the focus again.
    assert page.evaluate("document.activeElement.id") == "id_ppo__lam"

    # Fixed: the value in range, the key in its own field, the JSON box empty. Enter saves.
    _replace(page, "#id_more", "")
    _replace(page, "#id_ppo__kl_coef", "0.1")
    _replace(page, "#id_ppo__lam", "0.9")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/training/projects/tune/settings/?saved=1")
    assert Project.objects.get(id=project.id).training_settings == {"ppo": {"lam": 0.9, "kl_coef": 0.1}}
    assert page.input_value("#id_ppo__lam") == "0.9"

    # The rounds page shows what a round will use; one override, and Enter starts the round.
    page.goto(f"{base}/training/projects/tune/runs/")
    _replace(page, "#id_reward__lr", "0.002")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/training/runs/*/")
    fit, ppo, _ = Round.objects.get(project=project).runs.order_by("id")
    assert fit.config["lr"] == 0.002 and ppo.config["lam"] == 0.9 and ppo.config["kl_coef"] == 0.1
    row = page.locator("table.run-config tr", has_text="config.lr")
    assert row.locator("td").inner_text() == "0.002"
    assert page.dialogs == []
