"""The managers' merge, walked in Chromium: badge, list, untick, priority, compare, merge, toast, survivor, undo."""
import re
import time

import pytest
from django.contrib.auth.models import Permission

from crm.models import Customer, Email, Note, Order
from dedup.engine.counts import stored_counts
from dedup.engine.scoring.entity import scoring_learn
from dedup.models import FiguresPending, MergeJob, NotDuplicate, Rule, ScoringModel
from dedup.records import record_label
from tests import factories

# Timing against a real worker and Chromium on a loaded machine: retried twice before it counts as failed.
pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.flaky(reruns=2)]

PHONE = "+7 912 345-67-89"
MERGE_TIMEOUT_MS = 45_000


def _manager():
    """A staff manager, not a superuser: every CRM permission (cards, contacts, timeline), merge, notifications."""
    manager = factories.UserFactory(username="anna", first_name="Anna")
    manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="crm"),
        Permission.objects.get(content_type__app_label="dedup", codename="merge_records"),
        *Permission.objects.filter(content_type__app_label="dedup", codename__endswith="_notification"),
    )
    return manager


def _customer(*, phone, email=None, **fields):
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", **fields)
    factories.PhoneFactory(content_object=customer, number=phone)
    if email:
        factories.EmailFactory(content_object=customer, address=email)
    return customer


def _background_customers():
    """80 different people (own names, own phones, half with an email): what the scored matcher learns from."""
    firsts = ["Anna", "Boris", "Olga", "Pavel", "Irina", "Sergey", "Maria", "Dmitry", "Elena", "Nikolai"]
    lasts = ["Smirnov", "Kuznetsov", "Popov", "Vasiliev", "Sokolov", "Mikhailov", "Novikov", "Fedorov"]
    for n, (first, last) in enumerate((first, last) for last in lasts for first in firsts):
        customer = factories.CustomerFactory(first_name=first, last_name=last)
        factories.PhoneFactory(content_object=customer, number=f"+7 903 {n:03d}-{n * 37 % 100:02d}-{n * 53 % 100:02d}")
        if n % 2:
            factories.EmailFactory(content_object=customer, address=f"{first}.{last}{n}@example.com".lower())


def _wait_for_figures(look_alikes: list, seconds: float = 60) -> None:
    """The change list shows the stored figures, which the worker writes in the background: after each commit,
    and once more when the learned model's rebuild of the entity's figures commits (the rebuild may still be on its
    way when no record waits for a refresh). Wait until the look-alikes' figures are stored, as a manager would see
    them a moment later; the page is then checked for them."""
    deadline = time.monotonic() + seconds
    pks = [customer.pk for customer in look_alikes]
    expected = {pk: len(pks) - 1 for pk in pks}
    while FiguresPending.objects.filter(entity="customer").exists() or stored_counts(Customer, pks) != expected:
        assert time.monotonic() < deadline, (
            f"the customers' figures were not stored within {seconds} s: {stored_counts(Customer, pks)}; "
            f"{FiguresPending.objects.filter(entity='customer').count()} records waiting for theirs, "
            f"{Rule.objects.filter(entity='customer').count()} customer rules"
        )
        time.sleep(0.2)


def _login(page, live_server, next_url="/admin/"):
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", "anna")
    page.fill("#id_password", "pass")
    page.click('input[type="submit"]')


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_merge_flow_manager_merges_duplicates_and_undoes(live_server, page, new_page, screenshot, celery_worker):
    # Given a manager and a customer with three look-alikes sharing the phone: the current one has no email
    # and a pinned note; the second has the email, notes (one pinned) and an order; the fourth a task; the
    # third is a namesake with another email who must not be merged
    _manager()
    current = _customer(phone=PHONE, position="Head of purchasing")
    factories.NoteFactory(content_object=current, text="Pinned: prefers calls after 5 pm", pinned=True)
    factories.NoteFactory(content_object=current, text="Asked for a catalogue")
    second = _customer(phone="8 (912) 345-67-89", email="ivan.petrov@example.com", position="Buyer")
    factories.NoteFactory.create_batch(2, content_object=second)
    factories.NoteFactory(content_object=second, text="VIP: deliver to the office", pinned=True)
    order = factories.OrderFactory(customer=second, number="A-000777")
    namesake = _customer(phone="+79123456789", email="other.ivan@example.com")
    fourth = _customer(phone="+7 (912) 345 67 89")
    factories.TaskFactory(content_object=fourth, title="Send the contract")
    card = f"{live_server.url}/admin/crm/customer/{current.pk}/change/"
    # and a scored model learned from the customers, as `manage.py dedup_score customer` learns it
    _background_customers()
    scoring_learn(entity="customer")
    _wait_for_figures([current, second, namesake, fourth])

    # When the manager logs in and lists the customers that have duplicates
    page.goto(f"{live_server.url}/admin/login/?next=/admin/crm/customer/%3Fhas_duplicates%3Dyes")
    page.fill("#id_username", "anna")
    page.fill("#id_password", "pass")
    screenshot("login")
    page.click('input[type="submit"]')
    page.wait_for_url(re.compile(r"/admin/crm/customer/\?has_duplicates=yes"))

    # Then the four look-alikes are listed, each with its count in the Duplicates column
    counts = page.locator("td.field-duplicates_column a.dedup-count-link")
    assert counts.count() == 4
    assert sorted(counts.all_inner_texts()) == ["3", "3", "3", "3"]
    screenshot("changelist")

    # When the customer's card is opened
    page.goto(card)

    # Then the badge says "Duplicates: 3" in the header and next to the phones
    header_badge = page.locator(".object-tools a.dedup-badge")
    assert header_badge.inner_text().strip() == "Duplicates: 3"
    field_badge = page.locator(".inline-group a.dedup-badge--field").first
    assert field_badge.is_visible()
    screenshot("card_with_badge")

    # When the badge is clicked, the list opens in a dialog on the card
    header_badge.click()
    dialog = page.locator("dialog#dedup-dialog")
    dialog.locator(".dedup-list-form").wait_for()
    assert page.url == card
    rows = dialog.locator(".dedup-list-row")
    assert rows.count() == 4
    current_row = dialog.locator(f'.dedup-list-row[data-pk="{current.pk}"]')
    assert "Current" in current_row.inner_text()
    assert dialog.locator(f"#dedup-priority-{current.pk}").is_checked()
    assert "phone" in dialog.locator(f'.dedup-list-row[data-pk="{second.pk}"] .dedup-reasons').inner_text().lower()
    # and each look-alike carries the learned match probability
    assert re.fullmatch(r"\d+% match", dialog.locator(f'.dedup-list-row[data-pk="{second.pk}"] .dedup-match-badge')
                        .inner_text().strip())
    screenshot("duplicates_list", full_page=False)

    # And the namesake is unticked and the second customer made the priority record
    dialog.locator(f"#dedup-include-{namesake.pk}").uncheck()
    assert dialog.locator("[data-dedup-unticked-note]").is_visible()
    assert dialog.locator(f"#dedup-priority-{namesake.pk}").is_disabled()
    dialog.locator(f"#dedup-priority-{second.pk}").check()
    screenshot("unticked_and_priority", full_page=False)

    # When "Compare and merge" is pressed
    dialog.get_by_role("button", name="Compare and merge").click()
    page.wait_for_url(re.compile(r"/compare/\?"))

    # Then the side-by-side screen has a column per merged record, the priority first, and the summary
    headers = page.locator("th.dedup-record-col")
    assert headers.count() == 3
    assert f"Customer #{second.pk}" in headers.nth(0).inner_text()
    assert "Priority" in headers.nth(0).inner_text()
    emails = page.locator('tr[data-field="emails"] td.dedup-result').inner_text()
    assert "ivan.petrov@example.com" in emails and "other.ivan" not in emails
    summary = page.locator(".dedup-summary-headline").inner_text()
    assert f"{record_label(second)} stays; 2 records will be archived" in summary
    assert "3 notes" not in summary and "1 task" in summary and "2 notes" in summary
    # with the learned match probability of each record against the priority one, its why one click away
    badges = page.locator("th.dedup-record-col .dedup-match-badge")
    # (four records of 84 hold this phone and name, so term frequencies count them as a fairly common value: the
    # probability is what the stored model says, not a fixed figure)
    assert badges.count() == 2
    assert all(re.fullmatch(r"\d{1,3}% match", text) for text in badges.all_inner_texts())
    assert page.locator("th.dedup-record-col .dedup-why").first.is_hidden()
    badges.first.click()
    why = page.locator("th.dedup-record-col .dedup-why").first.inner_text()
    assert "phone: the same" in why and "full name: the same" in why
    screenshot("compare")
    # and a Russian reader sees the same screen in Russian
    russian = new_page("ru-RU")
    compare_url = page.url
    _login(russian, live_server)
    russian.goto(compare_url)
    russian_badges = russian.locator("th.dedup-record-col .dedup-match-badge")
    assert all(re.fullmatch(r"совпадение \d{1,3}%", text) for text in russian_badges.all_inner_texts())
    russian_badges.first.click()
    assert "телефон: совпадает" in russian.locator("th.dedup-record-col .dedup-why").first.inner_text()
    screenshot("compare_ru", of=russian)
    # (the Russian tab is the same manager's: closed, so the merge's toast pops in this tab, once per user)
    russian.close()
    badges.first.click()  # fold the why again
    page.emulate_media(color_scheme="dark")
    screenshot("compare_dark")
    page.emulate_media(color_scheme="light")

    # When the manager keeps the current record's position instead of the priority's, and merges
    page.locator(f'input[name="choice_position"][value="{current.pk}"]').check()
    assert page.locator('tr[data-field="position"] [data-dedup-result]').inner_text() == "Head of purchasing"
    assert "Position" in page.locator("[data-dedup-taken]").inner_text()
    screenshot("compare_choice")
    card_of_second = f"{live_server.url}/admin/crm/customer/{second.pk}/change/"
    with page.expect_response(lambda response: response.url == card_of_second) as landed:
        page.get_by_role("button", name="Merge 3 records").click()

    # Then they land on the survivor's card with the "queued" message (read from the page the server sent: the
    # card reloads itself as soon as the worker finishes, which may be before the test looks)
    page.wait_for_url(card_of_second)
    assert "Merge queued" in landed.value.text()
    screenshot("merge_queued")

    # And the worker's notification appears as a toast in the lower right corner, without a reload
    toast = page.locator("#mw-toasts .mw-toast--success")
    toast.wait_for(timeout=MERGE_TIMEOUT_MS)
    assert "Merge finished" in toast.inner_text()
    box = toast.bounding_box()
    viewport = page.viewport_size
    assert box["x"] + box["width"] > viewport["width"] * 0.75
    assert box["y"] + box["height"] > viewport["height"] * 0.75
    screenshot("toast", full_page=False)

    # When the manager opens the survivor from the toast
    toast.locator(".mw-toast__link").click()
    page.wait_for_url(f"{live_server.url}/admin/crm/customer/{second.pk}/change/")

    # Then everything moved to it: notes, the task, the order, the phones and the email; the chosen position;
    # the priority's pinned note stays the pinned one
    job = MergeJob.objects.get()
    assert job.status == MergeJob.Status.DONE, job.error
    # and the manager's merge was folded into the learned model (a task sent after the merge committed)
    deadline = time.monotonic() + 15
    while ScoringModel.objects.get(entity="customer").merges_folded < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ScoringModel.objects.get(entity="customer").merges_folded == 2
    survivor = Customer.objects.get(pk=second.pk)
    assert survivor.position == "Head of purchasing"
    assert Note.objects.filter(object_id=second.pk, text="Asked for a catalogue").exists()
    assert Order.objects.get(pk=order.pk).customer_id == second.pk
    assert set(Customer.objects.filter(is_archived=True).values_list("pk", flat=True)) == {current.pk, fourth.pk}
    assert Email.objects.filter(object_id=second.pk, address="ivan.petrov@example.com").exists()
    assert Note.objects.get(object_id=second.pk, pinned=True).text == "VIP: deliver to the office"
    # the namesake is remembered as not a duplicate of the records merged, so the survivor has no badge
    assert NotDuplicate.objects.filter(entity="customer").count() == 3
    assert page.locator(".object-tools a.dedup-badge").count() == 0
    assert page.locator("#id_position").input_value() == "Head of purchasing"
    page_text = page.locator("#content-main").inner_text()
    assert "Asked for a catalogue" in page.content() and "Send the contract" in page.content()
    assert "Merge history" in page_text
    screenshot("survivor")

    # And the absorbed customer's old page leads to the survivor
    page.goto(card)
    page.wait_for_url(f"{live_server.url}/admin/crm/customer/{second.pk}/change/")
    assert "was merged into" in page.locator(".messagelist").inner_text()

    # When the manager undoes the merge from the history on the card, confirming it
    page.locator("#merge-history a.dedup-undo-link").first.click()
    page.locator(".dedup-undo-confirm").wait_for()
    screenshot("undo_confirm")
    page.get_by_role("button", name="Yes, undo the merge").click()
    page.wait_for_url(f"{live_server.url}/admin/crm/customer/{second.pk}/change/")

    # Then the undo runs in the background like the merge (the card says it is queued, or done if the worker
    # was quicker than the page), the toast says when it is done, and the absorbed customers are back with
    # their notes, task and position
    queued = page.locator(".messagelist").inner_text()
    assert "Undo queued" in queued or "Merge undone" in queued
    undone_toast = page.locator("#mw-toasts .mw-toast--success", has_text="Undo finished")
    undone_toast.wait_for(timeout=MERGE_TIMEOUT_MS)
    screenshot("undone")
    assert not Customer.objects.filter(is_archived=True).exists()
    assert Customer.objects.get(pk=second.pk).position == "Buyer"
    assert Note.objects.filter(object_id=current.pk, text="Asked for a catalogue").exists()
    assert Note.objects.get(object_id=current.pk, pinned=True).text.startswith("Pinned")
    assert Order.objects.get(pk=order.pk).customer_id == second.pk
    # and the "not a duplicate" pairs the merge wrote for the unticked namesake are forgotten with it: the
    # namesake is a possible duplicate again, as before the merge
    assert not NotDuplicate.objects.exists()
    page.goto(card)
    assert page.url == card
    assert page.locator(".object-tools a.dedup-badge").inner_text().strip() == "Duplicates: 3"
    screenshot("current_after_undo")
