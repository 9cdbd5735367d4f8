"""Browser fixtures: Debian's Chromium driven by Playwright's sync API, a live server and a real Celery worker."""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium_browser():
    """One Chromium per test module; the tests are skipped when Debian's Chromium is not installed.

    Playwright's sync API keeps an event loop running in the test's thread, so Django would refuse the tests'
    ORM calls (SynchronousOnlyOperation): they are allowed while the browser is open, and only then.
    """
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium (/usr/bin/chromium) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1440, "height": 960}, locale="en-US")
    context.set_default_timeout(15_000)
    browser_page = context.new_page()
    yield browser_page
    context.close()


@pytest.fixture
def screenshot(page):
    """Save a screenshot of the current step as tests/browser/screenshots/<NN>_<name>.png (full page by default)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    def take(name: str, *, full_page: bool = True) -> Path:
        counter["n"] += 1
        target = SCREENSHOTS / f"{counter['n']:02d}_{name}.png"
        page.screenshot(path=str(target), full_page=full_page)
        return target

    return take


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker thread on the configured broker; tasks are not eager while it runs."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
            yield worker
    finally:
        app.conf.task_always_eager = True
