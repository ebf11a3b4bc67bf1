"""A researcher checks a file with two bad lines (both named, nothing written), then checks and imports a
good one, all from the keyboard, and sees the summary and the new row in the project's imports."""
import json

import pytest

from labeling.models import Comparison, Import, Label
from labeling.roles import RESEARCHER
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _line(i: int, **extra) -> str:
    return json.dumps({"query": f"Question {i}?", **{f"sample{j}": f"answer {i}.{j}" for j in range(4)}, **extra})


def test_bad_lines_are_all_shown_then_a_good_file_is_imported(live_server, page, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    project = ProjectFactory(k=4, slug="imp")
    UserFactory(username="res", role=RESEARCHER)
    base = live_server.url
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([_line(0, best=0), '{"query": "cut off', _line(2, best=0), _line(3, best=5)]) + "\n")
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join([_line(0, best=0), _line(1, best=3, labeler="w1"), _line(2)]) + "\n")

    login(page, base, "res")
    page.locator("a[href='/projects/imp/import/']").click()
    page.wait_for_url(f"{base}/projects/imp/import/")
    assert page.evaluate("document.activeElement.name") == "file"  # the upload has the focus

    # A file with two bad lines: both named with their numbers, nothing written, no import offered.
    page.set_input_files("input[name=file]", str(bad))
    page.focus("#import-check")
    page.keyboard.press("Enter")
    errors = page.locator("#import-errors tr.import-error")
    errors.first.wait_for()
    assert errors.count() == 2
    assert errors.nth(0).inner_text().startswith("line 2")
    assert "line 4" in errors.nth(1).inner_text() and "got 5" in errors.nth(1).inner_text()
    assert page.locator("#import-confirm").count() == 0
    assert Import.objects.count() == Comparison.objects.count() == 0

    # The good file: the rows as they will be stored, then Import.
    page.set_input_files("input[name=file]", str(good))
    page.focus("#import-check")
    page.keyboard.press("Enter")
    page.locator("#import-rows").wait_for()
    assert "Question 1?" in page.locator("#import-rows").inner_text()
    assert "w1" in page.locator("#import-rows").inner_text()
    page.focus("#import-submit")
    page.keyboard.press("Enter")
    page.locator("#import-summary").wait_for()
    assert "3 comparisons, 2 labels created" in page.locator("#import-summary").inner_text()
    assert "good.jsonl" in page.locator("#import-list").inner_text()
    assert (Comparison.objects.count(), Label.objects.count()) == (3, 2)
