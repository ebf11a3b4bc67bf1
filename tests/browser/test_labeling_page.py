"""A day's work on the labeling page, in a real browser against a real server: undo of the last label, and
nothing moves the samples (a notice, the instructions panel, the flag sheet)."""
import pytest

from labeling.models import Label
from labeling.roles import CONTRACTOR
from labeling.services import instructions_acknowledge, instructions_publish
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_page(page, base, project):
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "day")
    page.fill("input[name=password]", "pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/projects/{project.slug}/label/")
    page.locator("#label-form").wait_for()
    page.wait_for_load_state()  # the deferred compare.js binds the keys after parsing


def _project(n=3):
    project = ProjectFactory(k=2, slug="day")
    for _ in range(n):
        make_comparison(project)
    return project, UserFactory(username="day", role=CONTRACTOR)


def _boxes(page):
    return [page.locator(".card").nth(i).bounding_box() for i in range(page.locator(".card").count())]


def test_z_undoes_the_last_label_and_its_comparison_comes_back(live_server, page):
    project, _ = _project()
    _open_page(page, live_server.url, project)
    first = page.get_attribute("#label-form", "data-assignment")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.locator(f'#label-form:not([data-assignment="{first}"])').wait_for()
    assert Label.objects.count() == 1
    assert page.locator(".undo-button").is_visible()
    assert page.locator("#today-count").inner_text() == "today 1 label"

    page.keyboard.press("z")

    page.locator(f'#label-form[data-assignment="{first}"]').wait_for()
    assert Label.objects.count() == 0
    assert page.locator("#today-count").inner_text() == "today 0 labels"
    assert page.locator("#remaining-count").inner_text() == "3 left"
    # Answered again, it is stored again; the undo button now takes back that label.
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.locator(f'#label-form:not([data-assignment="{first}"])').wait_for()
    assert Label.objects.get().assignment_id == int(first)
    assert page.dialogs == []


def test_undo_button_goes_after_the_window_and_z_then_does_nothing(live_server, page, settings):
    settings.LABELING_UNDO_SECONDS = 1
    project, _ = _project()
    _open_page(page, live_server.url, project)
    first = page.get_attribute("#label-form", "data-assignment")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.locator(f'#label-form:not([data-assignment="{first}"])').wait_for()
    page.locator(".undo-button.is-expired").wait_for(state="attached", timeout=5000)
    assert not page.locator(".undo-button").is_visible()
    page.keyboard.press("z")
    page.wait_for_timeout(500)
    assert Label.objects.count() == 1
    assert page.get_attribute("#label-form", "data-assignment") != first


def test_notice_instructions_and_flag_sheet_do_not_move_or_hide_the_samples(live_server, page):
    project, labeler = _project()
    author = UserFactory(username="author")
    instructions = instructions_publish(project=project, body="Pick the best.\n\n" + "Long text. " * 300,
                                        author=author)
    instructions_acknowledge(instructions=instructions, user=labeler)
    _open_page(page, live_server.url, project)
    before = _boxes(page)

    page.keyboard.press("Enter")  # no choice yet: a notice says so
    page.locator("#notice .notice-error").wait_for()
    assert _boxes(page) == before

    page.keyboard.press("i")
    panel = page.locator("#instructions")
    panel.wait_for()
    side = panel.bounding_box()
    for box, old in zip(_boxes(page), before, strict=True):
        assert abs(box["y"] - old["y"]) < 1  # nothing pushed down
        assert box["x"] + box["width"] <= side["x"] + 1  # beside the panel, not under it
        assert box["y"] + box["height"] <= page.viewport_size["height"]
    page.keyboard.press("i")

    page.keyboard.press("f")
    sheet = page.locator("#flag-dialog")
    sheet.wait_for()
    side = sheet.bounding_box()
    for box in _boxes(page):
        assert box["x"] + box["width"] <= side["x"] + 1
        assert box["y"] + box["height"] <= page.viewport_size["height"]
