"""A contractor labels with the keyboard alone, in a real browser, against a real server."""
import pytest

from labeling.models import Assignment, Label
from labeling.roles import CONTRACTOR
from labeling.services import instructions_publish
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
KEYS = ["2", "C", "4", "a", "1"]  # mixed digits and letters, upper and lower case
POSITIONS = [1, 2, 3, 0, 0]


def _wait_for_new_assignment(page, previous: str) -> str:
    page.locator(f'#label-form:not([data-assignment="{previous}"])').wait_for()
    return page.get_attribute("#label-form", "data-assignment")


def test_contractor_labels_five_comparisons_with_keyboard_only(live_server, page):
    project = ProjectFactory(k=4, slug="kb")
    researcher = UserFactory(username="r1")
    instructions_publish(project=project, body="Pick the **most positive** continuation.", author=researcher)
    make_comparison(project, texts=[XSS, " a calm reply", " another", " the last one"])
    for _ in range(6):
        make_comparison(project)
    contractor = UserFactory(username="kbd", role=CONTRACTOR)

    login(page, live_server.url, "kbd", "pw-for-tests-123")
    page.goto(f"{live_server.url}/projects/kb/label/")
    page.locator("button.primary:focus").wait_for()  # autofocus lands on the acknowledge button
    page.keyboard.press("Enter")
    page.locator("#label-form").wait_for()
    page.wait_for_load_state()  # the form shows while parsing; the deferred compare.js binds the keys after

    # The hostile sample shows as text, and nothing it contains ran.
    assert page.get_by_text(XSS, exact=True).is_visible()
    assert page.locator("#pair img").count() == 0

    current = page.get_attribute("#label-form", "data-assignment")
    seen = []
    for key in KEYS:
        seen.append(int(current))
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        current = _wait_for_new_assignment(page, current)

    assert page.locator("#today-count").inner_text() == "today 5 labels"
    assert page.dialogs == []

    labels = list(Label.objects.filter(labeler=contractor).select_related("assignment").order_by("id"))
    assert [label.assignment_id for label in labels] == seen
    for label, position in zip(labels, POSITIONS):
        order = label.assignment.display_order
        assert sorted(order) == [0, 1, 2, 3]
        assert label.chosen_index == order[position]
        assert label.duration_ms > 0
        assert label.instructions.version == 1
        assert label.assignment.state == Assignment.State.SUBMITTED


def test_skip_and_flag_with_keyboard(live_server, page):
    project = ProjectFactory(k=4, slug="sk")
    make_comparison(project)
    make_comparison(project)
    make_comparison(project)
    contractor = UserFactory(username="skipper", role=CONTRACTOR)
    login(page, live_server.url, "skipper", "pw-for-tests-123")
    page.goto(f"{live_server.url}/projects/sk/label/")
    first = page.get_attribute("#label-form", "data-assignment")

    page.keyboard.press("Enter")  # nothing chosen yet: a notice, no request
    page.locator("#notice .notice-error").wait_for()
    assert "Choose a sample first" in page.locator("#notice").inner_text()

    page.keyboard.press("s")
    page.keyboard.type("context is unreadable")
    page.keyboard.press("Control+Enter")
    second = _wait_for_new_assignment(page, first)

    page.keyboard.press("b")
    page.keyboard.press("f")
    page.keyboard.press("Tab")  # from the sample selector (B preselected) to the note
    page.keyboard.type("contains an email address")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("u")
    page.keyboard.press("Enter")
    _wait_for_new_assignment(page, second)

    skipped, flagged = Label.objects.filter(labeler=contractor).order_by("id")
    assert skipped.skipped and skipped.skip_reason == "context is unreadable" and skipped.chosen_index is None
    assert flagged.unsure and flagged.chosen_index == flagged.assignment.display_order[1]
    flag = flagged.flags.get()
    assert flag.note == "contains an email address"
    assert flag.sample_id == flagged.comparison.entries.get(position=flagged.assignment.display_order[1]).sample_id
