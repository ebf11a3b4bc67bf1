"""A researcher creates a project with the keyboard alone: the slug follows the name until typed over,
Ctrl+Enter in the instructions creates it, and its instructions are published as v1 (a labeler is
shown them before their first label)."""
import re

import pytest

from labeling.models import Instructions, Project
from labeling.roles import CONTRACTOR, RESEARCHER
from tests.browser.helpers import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_a_project_by_keyboard_and_its_instructions_are_published(live_server, browser, page):
    UserFactory(username="res", role=RESEARCHER)
    UserFactory(username="lab", role=CONTRACTOR)
    base = live_server.url

    # From the project list to the form; the name has the focus and the slug follows it.
    login(page, base, "res")
    page.locator("a", has_text="New project").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/projects/new/")
    page.wait_for_load_state()  # the deferred project_new.js binds after parsing
    page.keyboard.type("Kind Replies, Take 2!")
    assert page.input_value("#id_slug") == "kind-replies-take-2"

    # A slug typed over stays as typed when the name changes again.
    page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("kind")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("End")
    page.keyboard.type(" (pilot)")
    assert page.input_value("#id_slug") == "kind"

    # Tab through the rest: task kind, K, label type, Likert axes, none acceptable and three defaults, description,
    # instructions.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("s")  # a select takes the option its first letter names
    page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("overall, coverage")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # none acceptable
    for _ in range(4):
        page.keyboard.press("Tab")
    page.keyboard.type("Replies to support tickets.")
    page.keyboard.press("Tab")
    page.keyboard.type("Pick the **kindest** reply.\nTyped <script>alert(1)</script> stays text.")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/(projects/kind/import/|training/projects/kind/runs/)$"))

    project = Project.objects.get(slug="kind")
    assert (project.name, project.task_kind, project.k, project.description) == (
        "Kind Replies, Take 2! (pilot)", "summarization", 2, "Replies to support tickets.")
    assert (project.likert_axes, project.allow_none_acceptable) == (["overall", "coverage"], True)
    [first] = Instructions.objects.filter(project=project)
    assert (first.version, first.created_by.username) == (1, "res")

    # The researcher's versions page lists v1 as current.
    page.goto(f"{base}/projects/kind/instructions/")
    row = page.locator("tr.is-current")
    assert row.locator("td").nth(0).inner_text() == "v1 current" and row.locator("td").nth(1).inner_text() == "res"

    # A labeler opening the project is shown them first, rendered and sanitised.
    labeler_context = browser.new_context(viewport={"width": 1280, "height": 720})
    labeler = labeler_context.new_page()
    labeler.set_default_timeout(30000)
    login(labeler, base, "lab")
    labeler.goto(f"{base}/projects/kind/label/")
    assert labeler.locator(".instructions-body strong").inner_text() == "kindest"
    assert labeler.locator(".instructions-body script").count() == 0
    assert page.dialogs == []
    labeler_context.close()
