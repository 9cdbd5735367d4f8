"""Browser fixtures: Debian's Chromium driven by Playwright's sync API, a live server and a real Celery worker."""
import os
import tempfile
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connections

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


@pytest.fixture(scope="session")
def migrated_data(django_db_setup):
    """The data the migrations wrote ({database alias: serialized rows}), as Django serialized it when it created
    the test database for the tests marked `serialized_rollback`; read before Playwright's loop runs."""
    return {
        alias: connections[alias]._test_serialized_contents
        for alias in connections
        if hasattr(connections[alias], "_test_serialized_contents")
    }


@pytest.fixture(autouse=True)
def _migrated_data_restored(request, migrated_data):
    """`serialized_rollback=True` for the browser tests: each starts from what the migrations wrote.

    While Playwright's loop runs in the test's thread, Django's connections (asgiref's thread-critical Local) are
    held per asyncio context: the test gets connection objects of its own, which lack the serialized data, so
    Django restored nothing. A browser test that ran after another transactional test, or again after a failure
    of its own, found a flushed database with no default rules. The database is flushed and the data restored
    here instead; the test's own flush at its end then leaves what a flush without serialized data leaves for
    the tests that follow (post_migrate's content types and permissions).
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("serialized_rollback"):
        return
    request.getfixturevalue("transactional_db")
    for alias, data in migrated_data.items():
        if hasattr(connections[alias], "_test_serialized_contents"):
            continue  # no loop running: Django restored it itself
        call_command("flush", verbosity=0, interactive=False, database=alias, inhibit_post_migrate=True)
        connections[alias].creation.deserialize_db_from_string(data)
    ContentType.objects.clear_cache()


@pytest.fixture(scope="module")
def chromium_browser(migrated_data):
    """One Chromium per test module; the tests are skipped when Debian's Chromium is not installed.

    Playwright's sync API keeps an event loop running in the test's thread, so Django would refuse the tests'
    ORM calls (SynchronousOnlyOperation): they are allowed while the browser is open, and only then. The
    migrations' data is read before (_migrated_data_restored).
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
