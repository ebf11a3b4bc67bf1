"""A researcher publishes new instructions and reads the diff with the keyboard; a contractor who is
mid-session must then acknowledge them, and their next label records the new version."""
import pytest

from labeling.models import Instructions, Label
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.services import instructions_acknowledge, instructions_publish
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_publish_with_keyboard_view_diff_and_contractor_reacknowledges(live_server, browser, page):
    project = ProjectFactory(k=4, slug="ins")
    researcher = UserFactory(username="res", role=RESEARCHER)
    contractor = UserFactory(username="lab", role=CONTRACTOR)
    v1 = instructions_publish(project=project, body="Pick the **most positive** continuation.", author=researcher)
    instructions_acknowledge(instructions=v1, user=contractor)
    for _ in range(3):
        make_comparison(project)
    base = live_server.url

    # The contractor is mid-session: a comparison is on screen under v1.
    labeler_context = browser.new_context(viewport={"width": 1280, "height": 720})
    labeler = labeler_context.new_page()
    labeler.set_default_timeout(30000)
    login(labeler, base, "lab")
    labeler.goto(f"{base}/projects/ins/label/")
    labeler.locator("#label-form").wait_for()
    lease = labeler.get_attribute("#label-form", "data-assignment")

    # The researcher edits with the keyboard: the preview follows, Ctrl+Enter publishes.
    login(page, base, "res")
    page.goto(f"{base}/projects/ins/instructions/edit/")
    page.focus("#instructions-body")
    page.keyboard.press("Control+End")
    page.keyboard.type("\nNever pick a sample with <script>alert(1)</script> in it; be **strict**.")
    page.locator("#preview strong", has_text="strict").wait_for()
    assert page.locator("#preview script").count() == 0
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{base}/projects/ins/instructions/")
    assert Instructions.objects.filter(project=project).count() == 2

    # The diff, reached and read by keyboard: n moves focus to the first change.
    page.locator("a", has_text="What changed in v2").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/projects/ins/instructions/diff/")
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "change-1"
    added = page.locator("#change-1 .diff-added .diff-text")
    assert added.inner_text() == "Never pick a sample with <script>alert(1)</script> in it; be **strict**."
    assert page.dialogs == []

    # The contractor's next submit sends them to acknowledge v2; then the same comparison is labeled under v2.
    labeler.keyboard.press("1")
    labeler.keyboard.press("Enter")
    labeler.locator("button.primary:focus", has_text="I have read instructions v2").wait_for()
    assert labeler.locator(".instructions-body strong", has_text="strict").is_visible()
    labeler.keyboard.press("Enter")
    labeler.locator(f'#label-form[data-assignment="{lease}"]').wait_for()
    labeler.wait_for_load_state()  # the form shows while parsing; the deferred compare.js binds the keys after
    labeler.keyboard.press("2")
    labeler.keyboard.press("Enter")
    labeler.locator(f'#label-form:not([data-assignment="{lease}"])').wait_for()
    label = Label.objects.get(labeler=contractor)
    assert label.assignment_id == int(lease)
    assert label.instructions.version == 2
    labeler_context.close()
