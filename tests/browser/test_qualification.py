"""Labelers who earn trust, in the browser: a new labeler fails the qualification set, retries and passes
(the researchers' answer and note after each item, Enter continues); a labeler who keeps missing gold
items is paused, told why, listed on the researchers' page and resumed there with a reason."""
import pytest

from labeling.models import LabelerStanding, QualificationAttempt, StandingChange
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.services.qualification import gold_mark_share, qualification_item_add
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _answered(project, researcher, n, *, texts=("good", "bad")):
    made = []
    for i in range(n):
        comparison = make_comparison(project, is_calibration=True, texts=[f" {texts[0]} {i}", f" {texts[1]} {i}"])
        make_label(comparison, researcher, chosen_index=0)
        made.append(comparison)
    return made


def _answer(page, word):
    """Choose the card whose text holds `word` with its number key, then Enter (after the time it takes to
    read the texts: an answer faster than READING_CHARS_PER_SECOND counts against a qualification attempt)."""
    page.locator("#label-form").wait_for()
    page.wait_for_timeout(1500)
    position = int(page.locator(".card", has_text=word).get_attribute("data-position"))
    page.keyboard.press(str(position + 1))
    page.keyboard.press("Enter")
    page.locator("#answer-feedback").wait_for()


def _continue(page):
    page.keyboard.press("Enter")
    page.locator("#answer-feedback").wait_for(state="detached")


def test_qualification_fail_retry_pass(live_server, page):
    researcher = UserFactory(username="res", role=RESEARCHER)
    UserFactory(username="lab", role=CONTRACTOR)
    project = ProjectFactory(k=2, slug="qual", qualification_required=True, qualification_items=2,
                             qualification_threshold=1.0)
    for comparison in _answered(project, researcher, 4):
        qualification_item_add(project=project, comparison_id=comparison.id, note="Good beats bad.", by=researcher)
    make_comparison(project, texts=[" live one", " live two"])
    base = live_server.url

    login(page, base, "lab")
    page.goto(f"{base}/projects/qual/label/")
    assert "item 1 of 2" in page.locator("#qualification-banner").inner_text()
    _answer(page, "bad")
    assert "chose differently" in page.locator("#answer-feedback h2").inner_text()
    assert page.locator("#feedback-note").inner_text() == "Good beats bad."
    _continue(page)
    _answer(page, "good")
    assert page.locator("#feedback-failed").is_visible()
    _continue(page)

    # The retry: new items, attempt 2.
    assert "attempt 2" in page.locator("#qualification-banner").inner_text()
    _answer(page, "good")
    assert "You agreed" in page.locator("#answer-feedback h2").inner_text()
    _continue(page)
    _answer(page, "good")
    assert page.locator("#feedback-passed").is_visible()
    _continue(page)
    page.locator(".card", has_text="live one").wait_for()
    assert page.locator("#qualification-banner").count() == 0
    assert [(a.number, a.correct, a.passed) for a in QualificationAttempt.objects.order_by("number")] == [
        (1, 1, False), (2, 2, True)]

    # The researchers see the attempts.
    page.context.clear_cookies()
    login(page, base, "res")
    page.goto(f"{base}/projects/qual/labelers/trust/")
    row = page.locator("#standing-lab")
    assert row.get_attribute("data-status") == "qualified"
    assert "#1: 1/2 of 2" in row.inner_text() and "failed" in row.inner_text() and "passed" in row.inner_text()


def test_gold_pause_and_resume(live_server, page):
    researcher = UserFactory(username="res", role=RESEARCHER)
    UserFactory(username="lab", role=CONTRACTOR)
    project = ProjectFactory(k=2, slug="gold", calibration_share=1.0, gold_share=1.0, gold_feedback=True,
                             gold_accuracy_threshold=0.7)
    _answered(project, researcher, 8)
    gold_mark_share(project=project, by=researcher)
    for i in range(3):
        make_comparison(project, texts=[f" plain {i}", f" other {i}"])
    base = live_server.url

    login(page, base, "lab")
    page.goto(f"{base}/projects/gold/label/")
    for _ in range(4):
        _answer(page, "bad")
        assert page.locator("#feedback-paused").count() == 0
        _continue(page)
    _answer(page, "bad")  # 0 of 5: the Wilson interval's upper end (0.43) is below 0.7
    assert page.locator("#feedback-paused").is_visible()
    page.keyboard.press("Enter")
    blocked = page.locator("#standing-blocked")
    blocked.wait_for()
    assert "paused" in blocked.inner_text() and "Gold accuracy 0/5" in blocked.inner_text()
    assert "ask them" in blocked.inner_text()

    researcher_page = page.context.browser.new_context().new_page()
    login(researcher_page, base, "res")
    researcher_page.goto(f"{base}/projects/gold/labelers/trust/")
    row = researcher_page.locator("#standing-lab")
    assert row.get_attribute("data-status") == "paused"
    assert "0/5" in row.inner_text()
    row.locator("select[name=action]").select_option("resume")
    row.locator("input[name=reason]").fill("Went over the instructions together.")
    row.locator("input[name=reason]").press("Enter")
    researcher_page.wait_for_url(f"{base}/projects/gold/labelers/trust/")
    assert researcher_page.locator("#standing-lab").get_attribute("data-status") == "qualified"
    assert StandingChange.objects.filter(status="qualified", changed_by=researcher,
                                         reason="Went over the instructions together.").exists()

    page.goto(f"{base}/projects/gold/label/")
    page.locator("#label-form").wait_for()
    assert LabelerStanding.objects.get(labeler__username="lab").status == "qualified"
