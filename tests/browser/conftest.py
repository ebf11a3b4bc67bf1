"""Playwright driving Debian's chromium (headless) against pytest-django's live server."""
import os

import pytest

from config.devservices import chromium_path


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    executable = os.environ.get("CHROMIUM_PATH") or chromium_path()
    if not executable:
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium for the browser tests (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed; `python3 manage.py test` installs it")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls of test bodies and
    # of pytest-django's set-up are still plain synchronous code, so Django's guard is told so.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(30000)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()
