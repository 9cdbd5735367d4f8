"""Browser fixtures: Debian's Chromium driven by Playwright's sync API, a live server and a real Celery worker."""
import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a tmp folder (MERGEWISE_SCREENSHOTS to choose another), to be looked at, not committed.
SCREENSHOTS = Path(os.environ.get("MERGEWISE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "mergewise-screenshots")
# A common laptop screen: every admin page must work at this size without page-wide horizontal scrolling.
VIEWPORT = {"width": 1366, "height": 768}
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
def new_page(chromium_browser):
    """Open pages at 1366x768 in a language ("en-US", "ru-RU"); each call is a new browser context (own cookies)."""
    contexts = []

    def open_page(locale: str = "en-US"):
        context = chromium_browser.new_context(viewport=VIEWPORT, locale=locale)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page("en-US")


@pytest.fixture
def screenshot(page, request):
    """Save a screenshot of the current step as <tmp>/mergewise-screenshots/<test>/<NN>_<name>.png (full page by
    default); `of=` takes another page than the test's own."""
    folder = SCREENSHOTS / request.node.name.replace("[", "_").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    counter = {"n": 0}

    def take(name: str, *, full_page: bool = True, of=None) -> Path:
        counter["n"] += 1
        target = folder / f"{counter['n']:02d}_{name}.png"
        (of or page).screenshot(path=str(target), full_page=full_page)
        return target

    return take


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker thread on the configured broker; tasks are not eager while it runs."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.conf.task_always_eager = False
    try:
        # Messages an earlier test left on the broker (sent while no worker ran) would run against this test's
        # database: the queue starts empty.
        app.control.purge()
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
            yield worker
    finally:
        app.conf.task_always_eager = True
