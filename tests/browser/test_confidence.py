"""A pairwise-confidence project (the 2020 9-point scale) labeled with the keyboard only: keys 1–9 pick a point
of the scale under the two samples, Enter submits; the export gives it back canonical in the 2020 layout."""
import pytest

from labeling.models import Assignment, Label, Project
from labeling.roles import CONTRACTOR
from labeling.selectors.exports import labels_export_rows
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_scale_answered_by_keyboard_and_exported(live_server, page):
    project = ProjectFactory(k=2, slug="conf", label_type=Project.LabelType.PAIRWISE_CONFIDENCE)
    UserFactory(username="lab", role=CONTRACTOR)
    for _ in range(2):
        make_comparison(project)
    base = live_server.url
    page.set_default_timeout(30000)
    login(page, base, "lab")
    page.goto(f"{base}/projects/conf/label/")
    page.locator("#pair[data-scale] .confidence-scale").wait_for()
    page.wait_for_load_state()  # the deferred compare.js binds the keys after the form shows

    answers = {}
    for key, side in (("7", 1), ("2", 0)):
        lease = int(page.get_attribute("#label-form", "data-assignment"))
        # Enter with no point picked says so and sends nothing.
        page.keyboard.press("Enter")
        page.locator("#notice", has_text="Pick a point of the scale").wait_for()
        page.keyboard.press(key)
        assert page.locator(f'.scale-point[data-point="{key}"]').get_attribute("class").split() == [
            "scale-point", "is-chosen"]
        assert page.locator(".card.is-chosen").get_attribute("data-position") == str(side)  # the side it prefers
        page.keyboard.press("Enter")
        page.locator(f'#label-form:not([data-assignment="{lease}"]), #pair .empty').first.wait_for()
        answers[lease] = int(key)

    # Stored canonical: a point shown on display order [1, 0] is mirrored (c -> 10 - c).
    for lease, shown in answers.items():
        order = Assignment.objects.get(id=lease).display_order
        label = Label.objects.get(assignment_id=lease)
        assert label.confidence == (shown if order == [0, 1] else 10 - shown)
        assert label.chosen_index == order[0 if shown < 5 else 1]
    rows = list(labels_export_rows(project=project, layout="2020"))
    assert sorted((r["choice"], r["extra"]["confidence"]) for r in rows) == sorted(
        Label.objects.values_list("chosen_index", "confidence"))
    assert all(r["extra"]["confidence"] for r in rows)
