"""A researcher filters the export by keyboard and pointer-free form filling: the count follows each change
(htmx, focus kept, the address bar keeps the filters), a backwards date range is named next to its field,
and Download saves the filtered JSON Lines file."""
import json
from pathlib import Path

import pytest
from django.utils import timezone

from labeling.models import Query
from labeling.roles import CONTRACTOR, RESEARCHER
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_count_and_download(live_server, page, tmp_path):
    project = ProjectFactory(k=4, slug="exp", name="Export me")
    UserFactory(username="res", role=RESEARCHER)
    contractor = UserFactory(username="lab", role=CONTRACTOR)
    made = []
    for i, split in enumerate(["valid", "valid", "train"]):
        comparison = make_comparison(project, texts=[f"q{i} <b>{j}</b>" for j in range(4)])
        Query.objects.filter(id=comparison.query_id).update(split=split)
        made.append(make_label(comparison, contractor, chosen_index=i))
    base = live_server.url

    login(page, base, "res")
    page.get_by_role("link", name="export", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/projects/exp/export/")
    assert page.evaluate("document.activeElement.id") == "id_layout"
    assert page.inner_text("#export-count") == "3 labels match"

    # A change re-counts in place; focus stays on the field and the address keeps the filter.
    page.focus("#id_split")
    page.select_option("#id_split", "valid")
    page.locator("#export-count", has_text="2 labels match").wait_for()
    assert page.evaluate("document.activeElement.id") == "id_split"
    assert "split=valid" in page.url

    # A backwards range is named next to the field, then put right.
    page.fill("#id_created_from", "2024-05-03")
    page.fill("#id_created_to", "2024-05-01")
    error = page.locator("#id_created_to-error")
    error.wait_for()
    assert "ends (2024-05-01) before it starts (2024-05-03)" in error.inner_text()
    assert "Correct the fields" in page.inner_text("#export-count")
    today = timezone.localdate().isoformat()
    page.fill("#id_created_from", today)
    page.fill("#id_created_to", today)
    page.locator("#export-count", has_text="2 labels match").wait_for()
    assert page.locator("#id_created_to-error").count() == 0

    # The pairs layout: Enter in the date field downloads the filtered file.
    page.select_option("#id_layout", "pairs")
    page.locator("#export-count", has_text="(6 lines)").wait_for()
    page.focus("#id_created_to")
    with page.expect_download() as caught:
        page.keyboard.press("Enter")
    download = caught.value
    assert download.suggested_filename == f"exp-labels-pairs-{today}.jsonl"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    rows = [json.loads(line) for line in Path(target).read_text().splitlines()]
    assert len(rows) == 6
    chosen = {f"q{i} <b>{made[i].chosen_index}</b>" for i in (0, 1)}
    assert {row["chosen"] for row in rows} == chosen
    assert all(row["prompt"].startswith("Context number") for row in rows)
    assert page.dialogs == []
