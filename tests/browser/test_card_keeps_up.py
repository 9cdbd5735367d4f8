"""An open card keeps up for any viewer, and a notification pops once per user, whichever browser it is in.

Manager Anna has a customer's card open (three tabs: untouched, with an unsaved edit, and the card of a record
about to be merged away); manager Boris merges that customer. Anna is not notified of Boris's merge, yet her
cards keep up: they poll their record's state. Boris's "merge finished" pops once as a toast, and neither a
reload nor his second browser pops it again. In English and in Russian, at 1366x768, with screenshots.
"""
import re

import pytest
from django.contrib.auth.models import Permission

from dedup.merge import merge_job_create
from dedup.models import MergeJob, Notification
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.flaky(reruns=2)]

# Cards and toasts poll every 5 s; a loaded machine gets some slack.
WAIT_MS = 30_000
TEXTS = {
    "en-US": {"changed": "This record was changed while it was open", "merged": "This record was merged"},
    "ru-RU": {"changed": "Пока карточка была открыта, запись изменилась", "merged": "Эта запись объединена с другой"},
}


def _manager(username):
    user = factories.UserFactory(username=username)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="crm"),
        Permission.objects.get(content_type__app_label="dedup", codename="merge_records"),
        *Permission.objects.filter(content_type__app_label="dedup", codename__endswith="_notification"),
    )
    return user


def _login(page, live_server, username):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pass")
    page.click('input[type="submit"]')
    page.wait_for_url(re.compile(r"/admin/$"))


def _no_toast_for(page, milliseconds=7_000):
    """Wait longer than a poll and return the toasts shown meanwhile."""
    page.wait_for_timeout(milliseconds)
    return page.locator("#mw-toasts .mw-toast").count()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_card_keeps_up_for_any_viewer_and_toast_pops_once_per_user(live_server, new_page, screenshot, locale):
    # Given two managers and two records of one person
    _manager("anna")
    boris = _manager("boris")
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="Buyer")
    factories.PhoneFactory(content_object=survivor, number="+7 912 345-67-89")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.EmailFactory(content_object=absorbed, address="ivan.petrov@example.com")
    card_url = f"{live_server.url}/admin/crm/customer/{survivor.pk}/change/"

    # and Anna with the survivor's card open, untouched and with an unsaved edit, and the other record's card
    anna = new_page(locale)
    _login(anna, live_server, "anna")
    anna.goto(card_url)
    edited = anna.context.new_page()
    edited.goto(card_url)
    edited.fill("#id_position", "Head of purchasing")
    away = anna.context.new_page()
    away.goto(f"{live_server.url}/admin/crm/customer/{absorbed.pk}/change/")
    # and Boris on the admin index
    laptop = new_page(locale)
    _login(laptop, live_server, "boris")

    # When Boris merges the two (the job runs as the worker would: tasks are eager here)
    job = merge_job_create(user=boris, survivor=survivor, absorbed=[absorbed])
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE, job.error_text

    # Then Anna's untouched card reloads itself with the merged email, though she was not notified
    anna.locator('input[value="ivan.petrov@example.com"]').wait_for(timeout=WAIT_MS)
    assert not Notification.objects.filter(user__username="anna").exists()
    screenshot(f"card_refreshed_{locale}", full_page=False, of=anna)
    # and the card with her unsaved edit keeps it and says the record changed, with a link to reload
    stale = edited.locator("#dedup-stale")
    stale.wait_for(timeout=WAIT_MS)
    assert TEXTS[locale]["changed"] in stale.inner_text()
    assert edited.locator("#id_position").input_value() == "Head of purchasing"
    screenshot(f"card_with_edits_told_{locale}", full_page=False, of=edited)
    # and the merged-away record's card says so, linking to the record it became
    gone = away.locator("#dedup-stale")
    gone.wait_for(timeout=WAIT_MS)
    assert TEXTS[locale]["merged"] in gone.inner_text()
    assert gone.locator("a").get_attribute("href").endswith(f"/admin/crm/customer/{survivor.pk}/change/")
    screenshot(f"card_merged_away_{locale}", full_page=False, of=away)

    # And Boris's "merge finished" pops as a toast once, in his language, without covering the page's end
    toast = laptop.locator("#mw-toasts .mw-toast--success")
    toast.wait_for(timeout=WAIT_MS)
    assert f"№{survivor.pk}" in toast.inner_text() if locale == "ru-RU" else f"#{survivor.pk}" in toast.inner_text()
    assert laptop.evaluate("parseInt(document.body.style.paddingBottom, 10)") > 0
    screenshot(f"toast_popped_{locale}", full_page=False, of=laptop)
    assert Notification.objects.get(user=boris).popped_at is not None
    # and not again: neither after a reload nor in his second browser, where it waits in the list, unread
    laptop.reload()
    assert _no_toast_for(laptop) == 0
    phone = new_page(locale)
    _login(phone, live_server, "boris")
    assert _no_toast_for(phone) == 0
    assert phone.locator("#mw-notifications-link .mw-unread-count").inner_text().strip() == "1"
    screenshot(f"second_browser_no_toast_{locale}", full_page=False, of=phone)
