"""The label types of issue 18 answered with the keyboard only, then exported: a ranking of K with ties (keys in
order, best first, "=" ties, Backspace takes back; the order shows as it builds) and, on a best-of-2 project,
7-point Likert ratings after the choice with "none acceptable" (N)."""
import pytest

from labeling.label_types import LikertAxes, Ranking
from labeling.models import Assignment, Label, Project
from labeling.roles import CONTRACTOR
from labeling.selectors.exports import labels_export_rows
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open(page, base, slug, ready):
    page.set_default_timeout(30000)
    login(page, base, "lab")
    page.goto(f"{base}/projects/{slug}/label/")
    page.locator(ready).wait_for()
    page.wait_for_load_state()  # the deferred compare.js binds the keys after the form shows


def _next(page, lease):
    page.locator(f'#label-form:not([data-assignment="{lease}"]), #pair .empty').first.wait_for()


def test_ranking_with_ties_by_keyboard_and_exported(live_server, page):
    project = ProjectFactory(k=4, slug="rank", label_type=Project.LabelType.RANKING)
    UserFactory(username="lab", role=CONTRACTOR)
    make_comparison(project)
    base = live_server.url
    _open(page, base, "rank", "#pair[data-ranking] .ranking-line")
    lease = int(page.get_attribute("#label-form", "data-assignment"))

    order = page.locator("#ranking-order")
    for key in ("b", "=", "d", "a"):
        page.keyboard.press(key)
    assert order.text_content() == "B = D > A"
    page.keyboard.press("Enter")  # not every sample placed: says so, sends nothing
    page.locator("#notice", has_text="Rank all 4 samples").wait_for()
    page.keyboard.press("Backspace")  # A taken back
    page.keyboard.press("c")
    page.keyboard.press("a")
    assert order.text_content() == "B = D > C > A"
    marks = [page.locator(f'.card[data-position="{i}"] .rank-mark').text_content() for i in range(4)]
    assert marks == ["#3", "#1", "#2", "#1"]
    assert sorted(page.locator(".card.is-chosen").evaluate_all("els => els.map(e => e.dataset.position)")) == ["1", "3"]
    page.keyboard.press("Enter")
    _next(page, lease)

    display = Assignment.objects.get(id=lease).display_order
    label = Label.objects.get(assignment_id=lease)
    assert label.ranking == Ranking.to_canonical([3, 1, 2, 1], display)
    assert label.chosen_index == display[1]  # B, pressed first
    (row,) = labels_export_rows(project=project, layout="2019")
    assert (row["best"], row["ranks"]) == (label.chosen_index, label.ranking)
    pairs = list(labels_export_rows(project=project, layout="pairs"))
    assert len(pairs) == 5  # 4 choose 2 = 6 pairs, less B = D


def test_likert_ratings_and_none_acceptable_by_keyboard_and_exported(live_server, page):
    project = ProjectFactory(k=2, slug="rate", likert_axes=["overall", "coverage"], allow_none_acceptable=True)
    UserFactory(username="lab", role=CONTRACTOR)
    make_comparison(project)
    base = live_server.url
    _open(page, base, "rate", "#pair[data-likert] .likert")
    lease = int(page.get_attribute("#label-form", "data-assignment"))

    page.keyboard.press("b")  # choose B; the ratings come next
    assert page.locator(".likert-cell.is-current").get_attribute("aria-label") == "overall of A"
    page.keyboard.press("Enter")
    page.locator("#notice", has_text="Rate every sample").wait_for()
    for key in ("2", "3", "1", "9", "4"):  # 9 is off the 7-point scale: ignored
        page.keyboard.press(key)
    page.keyboard.press("Backspace")  # clears the last rating (4), which is typed again as 5
    page.keyboard.press("5")
    cells = page.locator(".likert-cell").all_text_contents()
    assert cells == ["2", "3", "1", "5"]
    page.keyboard.press("n")
    assert page.locator("input[name=none_acceptable]").is_checked()
    page.keyboard.press("Enter")
    _next(page, lease)

    display = Assignment.objects.get(id=lease).display_order
    label = Label.objects.get(assignment_id=lease)
    assert label.chosen_index == display[1]
    assert label.likert == LikertAxes.to_canonical({"overall": [2, 3], "coverage": [1, 5]}, display)
    assert label.none_acceptable is True
    (row,) = labels_export_rows(project=project, layout="2019")
    assert (row["likert"], row["none_acceptable"]) == (label.likert, True)
    axes = list(labels_export_rows(project=project, layout="2020-axes"))
    assert [a["summary"]["axes"] for a in axes] == [
        {axis: label.likert[axis][i] for axis in ("overall", "coverage")} for i in range(2)]
    (pair,) = labels_export_rows(project=project, layout="2020")
    assert pair["extra"]["none_acceptable"] is True


def test_a_rating_clicked_takes_the_next_digit(live_server, page):
    """With the mouse: a clicked cell (even one already rated) takes the digit typed next; the rest fill in order."""
    project = ProjectFactory(k=2, slug="rate", likert_axes=["overall"])
    UserFactory(username="lab", role=CONTRACTOR)
    make_comparison(project)
    _open(page, live_server.url, "rate", "#pair[data-likert] .likert")
    lease = int(page.get_attribute("#label-form", "data-assignment"))
    page.keyboard.press("a")
    page.keyboard.press("3")
    page.click('.likert-cell[aria-label="overall of A"]')
    page.keyboard.press("6")  # A again, not B
    assert page.locator(".likert-cell").all_text_contents() == ["6", "·"]
    page.keyboard.press("2")  # B, the next empty cell
    page.keyboard.press("Enter")
    _next(page, lease)
    display = Assignment.objects.get(id=lease).display_order
    assert Label.objects.get(assignment_id=lease).likert == LikertAxes.to_canonical({"overall": [6, 2]}, display)
