"""A researcher reads the dashboard in a real browser: chart, table, drill-down, CSV download."""
import csv
import io

import pytest

from labeling.roles import RESEARCHER
from tests.browser.helpers import login
from tests.factories import ProjectFactory, UserFactory
from tests.labeling.quality_helpers import hand_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_opens_dashboard_drills_into_labeler_and_downloads_csv(live_server, page):
    project = ProjectFactory(k=4, slug="dash", name="Dash project")
    hand_world(project)
    UserFactory(username="reader", role=RESEARCHER)
    base = live_server.url

    login(page, base, "reader", "pw-for-tests-123")
    page.get_by_role("link", name="dashboard").click()
    page.wait_for_url(f"{base}/projects/dash/dashboard/")
    assert page.locator("figure.chart svg").count() == 3
    assert page.locator("#agreement-summary").get_by_text("labelers vs researchers", exact=True).is_visible()

    page.get_by_role("link", name="Labeler table").click()
    page.wait_for_url(f"{base}/projects/dash/dashboard/labelers/")
    assert page.locator("#labelers tbody tr").count() == 5
    page.get_by_role("link", name="K-way agreement").click()  # sort by a header link
    page.wait_for_url("**/dashboard/labelers/?sort=kway")
    assert page.locator("#labelers th[aria-sort=ascending]").inner_text() == "K-way agreement"

    page.get_by_role("link", name="lab-a").focus()
    page.keyboard.press("Enter")  # the drill-down by keyboard
    page.wait_for_url("**/dashboard/labelers/*/")
    assert page.locator("#labels tbody tr").count() == 5
    assert page.locator("#detectors").get_by_text("copy preference").is_visible()

    with page.expect_download() as info:
        page.locator("#labeler-csv").click()
    download = info.value
    assert download.suggested_filename.startswith("dash-labeler-")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert rows[0][0] == "label" and len(rows) == 6
