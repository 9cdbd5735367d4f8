"""The toasts of static/dedup/notifications.js when the card they are on reloads itself to show a merge of its
record: on a slow server the old page lives on until the new one arrives, and a toast claimed (noted popped on the
server) in between must still be shown once. The slow server is played by holding the browser's requests
(page.route) in the order that loses a toast, so each race is pinned, not left to the machine's load."""
import re
import time

import pytest
from django.contrib.auth.models import Permission

from dedup.merge import merge_job_create
from dedup.models import MergeJob, Notification
from tests import factories

pytestmark = [pytest.mark.browser]

# The card and the toasts poll every 5 s; a loaded machine gets some slack.
WAIT_MS = 30_000
POLL = re.compile(r"/admin/dedup/notifications/poll/")
POPPED = re.compile(r"/admin/dedup/notifications/popped/")
STATE = re.compile(r"/admin/dedup/records/\d+/[^/]+/state/")


def _manager():
    manager = factories.UserFactory(username="anna")
    manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="crm"),
        Permission.objects.get(content_type__app_label="dedup", codename="merge_records"),
        *Permission.objects.filter(content_type__app_label="dedup", codename__endswith="_notification"),
    )
    return manager


class Held:
    """Requests to one URL held until released: a server that answers late. Pass-through until armed."""

    def __init__(self, page, url, *, answer_held=False):
        self.page = page
        self.armed = False
        self.answer_held = answer_held
        self.routes = []  # (route, response fetched from the server or None)
        self.seen = 0
        page.route(url, self._handle)

    def _handle(self, route):
        self.seen += 1
        if not self.armed:
            route.continue_()
        elif self.answer_held:
            # The server does the work at once; the page hears of it only on release.
            self.routes.append((route, route.fetch()))
        else:
            self.routes.append((route, None))

    def wait(self, count=1, timeout_ms=WAIT_MS):
        deadline = time.monotonic() + timeout_ms / 1000
        while len(self.routes) < count:
            assert time.monotonic() < deadline, f"no request held within {timeout_ms} ms"
            self.page.wait_for_timeout(100)

    def release(self):
        routes, self.routes = self.routes, []
        self.armed = False
        for route, response in routes:
            if response is None:
                route.continue_()
            else:
                route.fulfill(response=response)


def _open_card(live_server, page):
    """Log in and open the card of a record about to be merged, its first poll answered."""
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.PhoneFactory(content_object=survivor, number="+7 912 345-67-89")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.EmailFactory(content_object=absorbed, address="ivan.petrov@example.com")
    card_url = f"{live_server.url}/admin/crm/customer/{survivor.pk}/change/"
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "anna")
    page.fill("#id_password", "pass")
    page.click('input[type="submit"]')
    page.wait_for_url(re.compile(r"/admin/$"))
    with page.expect_response(POLL):
        page.goto(card_url)
    return card_url, survivor, absorbed


def _merge(manager, survivor, absorbed):
    """Merge as the worker would (tasks are eager here); return the manager's "merge finished"."""
    job = merge_job_create(user=manager, survivor=survivor, absorbed=[absorbed])
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE, job.error_text
    return Notification.objects.get(user=manager, job=job)


def _toast_once_on_reloaded_card(page, notification):
    toast = page.locator("#mw-toasts .mw-toast--success")
    toast.wait_for(timeout=WAIT_MS)
    assert f"#{notification.job.survivor_id}" in toast.inner_text()
    # the card shows the merged data, and the toast is there once
    assert page.locator('input[value="ivan.petrov@example.com"]').count() == 1
    assert page.locator("#mw-toasts .mw-toast").count() == 1
    notification.refresh_from_db()
    assert notification.popped_at is not None and notification.read_at is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_notifications_poll_answering_while_the_card_reloads_leaves_the_toast_to_the_new_page(live_server, page):
    # Given a manager's open card of a record her merge (done by the worker) just changed
    manager = _manager()
    polls = Held(page, POLL)
    states = Held(page, STATE)
    reload = Held(page, re.compile(r"/admin/crm/customer/\d+/change/$"))
    popped = Held(page, POPPED)
    card_url, survivor, absorbed = _open_card(live_server, page)
    notification = _merge(manager, survivor, absorbed)

    # When the toasts' poll and the card's state check are both on their way,
    polls.armed = states.armed = True
    polls.wait()
    states.wait()
    # the state check answers first and the card reloads itself, on a server slow to send the new page,
    reload.armed = True
    states.release()
    reload.wait()
    # and the poll answers with the "merge finished" while the old page is still there
    polls.release()
    # (the old page would claim the toast now: give it the time, the claim passes to the server)
    deadline = time.monotonic() + 5
    while not popped.seen and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    with page.expect_navigation():
        reload.release()
    assert page.url == card_url

    # Then the new page shows the toast once: the old page, leaving, claimed nothing it could not show
    _toast_once_on_reloaded_card(page, notification)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_notifications_toast_claimed_when_the_card_reloads_is_shown_on_the_new_page(live_server, page):
    # Given a manager's open card of a record her merge (done by the worker) just changed
    manager = _manager()
    states = Held(page, STATE)
    popped = Held(page, POPPED, answer_held=True)
    card_url, survivor, absorbed = _open_card(live_server, page)
    notification = _merge(manager, survivor, absorbed)

    # When the toasts' poll finds the "merge finished" and claims it, the server noting it popped at once but
    # answering late,
    states.armed = popped.armed = True
    popped.wait()
    notification.refresh_from_db()
    assert notification.popped_at is not None
    # and the card's state check, answering meanwhile, reloads the card before the claim's answer is back
    states.wait()
    with page.expect_navigation():
        states.release()
    assert page.url == card_url

    # Then the toast the old page claimed is shown on the new page, once
    _toast_once_on_reloaded_card(page, notification)
