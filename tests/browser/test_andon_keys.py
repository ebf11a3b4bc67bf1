"""The andon cord on the labeling page, by keyboard: Enter on the focused "Stop this policy" button opens the cord's
dialog and stores no label; the cord has its own key (X); typing in the dialog never reaches the page's keys;
Enter from the page still submits."""
import pytest

from labeling.models import Comparison, Label
from labeling.roles import CONTRACTOR
from tests.browser.helpers import login
from tests.browser.test_labeling import _wait_for_new_assignment
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _chosen(page) -> list[str]:
    return page.eval_on_selector_all("#label-form input[name=choice]:checked", "els => els.map(e => e.value)")


def test_cord_button_enter_and_its_key_open_the_dialog_and_store_no_label(live_server, page):
    project = ProjectFactory(k=4, slug="cord")
    run = TrainingRunFactory(project=project, kind="sample")
    for _ in range(2):
        Comparison.objects.filter(id=make_comparison(project).id).update(source_run=run)
    contractor = UserFactory(username="puller", role=CONTRACTOR)
    login(page, live_server.url, "puller", "pw-for-tests-123")
    page.goto(f"{live_server.url}/projects/cord/label/")
    page.locator("#label-form").wait_for()
    page.wait_for_load_state()
    first = page.get_attribute("#label-form", "data-assignment")
    cord = page.locator("button[data-open=andon-dialog]")
    dialog = page.locator("#andon-dialog")

    page.keyboard.press("1")  # a choice is made, so an Enter that submitted would store a label
    cord.focus()
    page.keyboard.press("Enter")
    dialog.and_(page.locator("[open]")).wait_for()
    assert page.evaluate("document.activeElement.name") == "reason"
    page.keyboard.type("b2 u s 3")  # the page's keys, typed into the dialog
    assert dialog.locator("textarea[name=reason]").input_value() == "b2 u s 3"
    assert _chosen(page) == ["A"]
    assert not page.locator("#skip-dialog[open]").count()
    page.keyboard.press("Escape")
    page.locator("#andon-dialog:not([open])").wait_for(state="attached")
    assert Label.objects.filter(labeler=contractor).count() == 0

    page.focus("#label-form")
    page.keyboard.press("x")
    dialog.and_(page.locator("[open]")).wait_for()
    page.keyboard.press("Escape")
    page.locator("#andon-dialog:not([open])").wait_for(state="attached")
    assert Label.objects.filter(labeler=contractor).count() == 0

    page.focus("#label-form")
    page.keyboard.press("Enter")  # from the page, Enter still submits the choice
    _wait_for_new_assignment(page, first)
    label = Label.objects.get(labeler=contractor)
    assert label.chosen_index == label.assignment.display_order[0]
