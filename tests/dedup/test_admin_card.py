"""Duplicate control on the admin cards (dedup/admin_card.py): badge, list, compare and merge, history, undo."""
import json
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Customer, Note, Order
from dedup.models import MergeJob, Notification, NotDuplicate
from dedup.records import record_label
from tests import factories

PHONE = "+7 912 345-67-89"


def _url(name, pk=None, model="customer"):
    args = [pk] if pk is not None else []
    return reverse(f"admin:crm_{model}_{name}", args=args)


def _customer(first="Ivan", last="Petrov", phone=PHONE, email=None, **fields):
    customer = factories.CustomerFactory(first_name=first, last_name=last, **fields)
    if phone:
        factories.PhoneFactory(content_object=customer, number=phone)
    if email:
        factories.EmailFactory(content_object=customer, address=email)
    return customer


def _user(*perms, username="manager"):
    user = factories.UserFactory(username=username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def _client_for(client, user):
    client.force_login(user)
    return client


def _messages(response):
    return [str(message) for message in response.context["messages"]] if response.context else []


def _merge_post_data(client, compare_url):
    """Open the compare screen and return the form data it would post with its defaults."""
    page = client.get(compare_url)
    assert page.status_code == 200
    form = page.context["form"]
    data = {"priority": form["priority"].value(), "records": form["records"].value()}
    for name, field in form.fields.items():
        if name.startswith(("choice_", "expected_")):
            data[name] = form[name].value()
    return data


@pytest.fixture
def group(db, django_capture_on_commit_callbacks):
    """The current customer and two duplicates sharing its phone (saved and committed: the list's figures are
    refreshed on commit)."""
    with django_capture_on_commit_callbacks(execute=True):
        current = _customer(position="")
        second = _customer(email="ivan@example.com", position="Buyer")
        third = _customer(phone="8 (912) 345-67-89")
    return current, second, third


# --- The badge ---------------------------------------------------------------------------------------------


def test_card_badge_shows_count_in_header_and_next_to_phone(admin_client, group):
    # Given a customer with two duplicates
    current, _second, _third = group

    # When the manager opens the card
    response = admin_client.get(_url("change", current.pk))

    # Then the header shows "Duplicates: 2" and the card carries the badge for the phone and email inlines
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("Duplicates: 2") == 2  # the header badge and the one card.js places next to the fields
    assert 'class="dedup-tools-badge"' in html
    config = json.loads(re.search(r'id="dedup-card-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert config["count"] == 2
    assert config["duplicatesUrl"].startswith(_url("duplicates", current.pk))
    assert ["#crm-phone-content_type-object_id-group"] in config["anchors"]
    assert "dedup/card.js" in html


def test_card_badge_hidden_without_duplicates(admin_client, db):
    # Given a customer nobody else resembles
    alone = _customer(first="Olga", last="Sidorova", phone="+7 903 000-00-01")

    # When the manager opens the card
    html = admin_client.get(_url("change", alone.pk)).content.decode()

    # Then no badge is shown
    assert "Duplicates:" not in html
    assert "dedup-badge" not in html


@pytest.mark.parametrize("model", ["customer", "company", "lead", "deal", "order"])
def test_card_badge_on_every_entity(admin_client, db, model):
    # Given two records of the entity that are duplicates by the default rules
    if model == "customer":
        records = [_customer(), _customer()]
    elif model == "company":
        records = [factories.CompanyFactory(name="Acme LLC"), factories.CompanyFactory(name="ACME, llc")]
    elif model == "lead":
        records = [factories.LeadFactory(title=f"Lead {n}") for n in range(2)]
        for lead in records:
            factories.PhoneFactory(content_object=lead, number=PHONE)
    elif model == "deal":
        customer = _customer()
        records = [factories.DealFactory(customer=customer, service="Delivery") for _n in range(2)]
    else:
        records = [factories.OrderFactory(phone=PHONE), factories.OrderFactory(phone="8 912 345 67 89")]

    # When the first one's card is opened
    html = admin_client.get(_url("change", records[0].pk, model=model)).content.decode()

    # Then it shows one duplicate
    assert "Duplicates: 1" in html


def test_order_card_anchors_badge_to_email_and_phone_fields(admin_client, db):
    # Given two orders with the same email
    first = factories.OrderFactory(email="ivan@example.com")
    factories.OrderFactory(email="IVAN@example.com")

    # When the first order's card is opened
    html = admin_client.get(_url("change", first.pk, model="order")).content.decode()

    # Then the badge goes next to its own email and phone fields
    config = json.loads(re.search(r'id="dedup-card-config"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert [".fieldBox.field-email", ".form-row.field-email"] in config["anchors"]
    assert [".fieldBox.field-phone", ".form-row.field-phone"] in config["anchors"]


def _card_queries(client, pk):
    admin.site.app_list_forget()  # the sidebar built by every page measured (see _changelist_queries)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(_url("change", pk)).status_code == 200
    return len(captured.captured_queries)


def test_card_queries_do_not_grow_with_duplicates(admin_client, db, django_assert_max_num_queries):
    # Given a customer with 2 duplicates, measured
    small = [_customer(phone="+7 912 000-00-01") for _n in range(3)]
    baseline = _card_queries(admin_client, small[0].pk)

    # When the base grows to a customer with 29 duplicates
    big = [_customer(phone="+7 912 000-00-02") for _n in range(30)]

    # Then its card takes no more queries than the small one's
    admin.site.app_list_forget()
    with django_assert_max_num_queries(baseline):
        response = admin_client.get(_url("change", big[0].pk))
    assert "Duplicates: 29" in response.content.decode()


# --- The change list ---------------------------------------------------------------------------------------


def _changelist_queries(client, url):
    # The sidebar's application list is kept per user for 60 s in the process (config/admin_site.py): forgotten
    # before each page measured, every page builds it, whatever an earlier test kept or the clock expired between
    # two pages (tests/crm/test_admin_lists.py).
    admin.site.app_list_forget()
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_changelist_column_counts_duplicates(admin_client, group, django_capture_on_commit_callbacks):
    # Given three customers that are duplicates of each other and one that is not
    with django_capture_on_commit_callbacks(execute=True):
        _customer(first="Olga", last="Sidorova", phone="+7 903 000-00-01")

    # When the change list is opened
    response = admin_client.get(_url("changelist"))
    html = response.content.decode()

    # Then the Duplicates column shows 2 for each of the three, linking to the card's list
    assert "column-duplicates_column" in html
    assert html.count('class="dedup-count-link"') == 3
    current = group[0]
    assert f'href="{_url("change", current.pk)}#duplicates"' in html


def test_changelist_filter_has_duplicates(admin_client, group, django_capture_on_commit_callbacks):
    # Given three duplicates and one customer without any
    with django_capture_on_commit_callbacks(execute=True):
        alone = _customer(first="Olga", last="Sidorova", phone="+7 903 000-00-01")

    # When the list is filtered to records with duplicates, then without
    with_dupes = admin_client.get(_url("changelist"), {"has_duplicates": "yes"})
    without = admin_client.get(_url("changelist"), {"has_duplicates": "no"})

    # Then each shows the right records
    assert {c.pk for c in with_dupes.context["cl"].result_list} == {c.pk for c in group}
    assert [c.pk for c in without.context["cl"].result_list] == [alone.pk]


def test_changelist_queries_do_not_grow_with_rows(
    admin_client, db, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    # Given 3 customers in duplicate pairs, measured
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            _customer(first=f"Name{n}", phone=f"+7 912 100-00-{n // 2:02d}")
    baseline = _changelist_queries(admin_client, _url("changelist"))

    # When the base grows to 30
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3, 30):
            _customer(first=f"Name{n}", phone=f"+7 912 100-00-{n // 2:02d}")

    # Then the change list with its Duplicates column takes no more queries
    admin.site.app_list_forget()
    with django_assert_max_num_queries(baseline):
        response = admin_client.get(_url("changelist"))
    assert response.content.decode().count('class="dedup-count-link"') >= 28


# --- The list behind the badge -----------------------------------------------------------------------------


def test_duplicates_fragment_lists_current_and_matches(admin_client, group):
    # Given a customer with two duplicates, one with a note and an order
    current, second, third = group
    factories.NoteFactory(content_object=second)
    factories.OrderFactory(customer=second)

    # When the card's dialog fetches the list
    response = admin_client.get(_url("duplicates", current.pk), {"fragment": "1"})
    html = response.content.decode()

    # Then it is a fragment (no admin page around it) with the current record marked and each match's reason
    assert response.status_code == 200
    assert "<html" not in html
    assert html.count('class="dedup-list-row') == 3
    assert "Current" in html
    assert f"Customer #{second.pk}" in html and f"Customer #{third.pk}" in html
    assert "phone" in html.lower()
    assert "1 order" in html and "1 note" in html
    # and the priority defaults to the current record, every match ticked
    assert re.search(rf'name="priority" value="{current.pk}"[^>]*checked', html)
    assert len(re.findall(r'name="include" value="\d+"[^>]*checked', html)) == 2


def test_duplicates_page_without_javascript(admin_client, group):
    # Given a customer with duplicates
    current = group[0]

    # When the list is opened as a page (the badge's link without JavaScript)
    response = admin_client.get(_url("duplicates", current.pk))

    # Then it is a full admin page with the same form
    html = response.content.decode()
    assert "<html" in html and 'class="dedup-list-form"' in html
    assert "Back to the record" in html


def test_duplicates_untick_and_confirm_remembers_not_duplicate(admin_client, admin_user, group):
    # Given a customer with two duplicates
    current, second, third = group

    # When the manager unticks the third one and confirms
    response = admin_client.post(
        _url("duplicates", current.pk),
        {"priority": current.pk, "shown": [second.pk, third.pk], "include": [second.pk], "action": "dismiss"},
        follow=True,
    )

    # Then the pair is remembered, the card shows one duplicate left and says so
    low, high = sorted([current.pk, third.pk])
    assert NotDuplicate.objects.filter(entity="customer", low_id=low, high_id=high, created_by=admin_user).exists()
    assert NotDuplicate.objects.count() == 1
    html = response.content.decode()
    assert "Duplicates: 1" in html
    assert "1 record will no longer be shown as a duplicate" in html


def test_duplicates_compare_goes_to_screen_with_priority_and_ticked(admin_client, group):
    # Given a customer with two duplicates
    current, second, third = group

    # When the second is chosen as priority, the third unticked, and "Compare and merge" pressed
    response = admin_client.post(
        _url("duplicates", current.pk),
        {"priority": second.pk, "shown": [second.pk, third.pk], "include": [second.pk], "action": "compare"},
    )

    # Then the compare screen opens with the priority first and the current record, the third carried along
    # as left out; nothing is stored as "not a duplicate" before the manager confirms the merge
    assert response.status_code == 302
    assert response.url == (
        f"{_url('compare', current.pk)}?records={second.pk}&records={current.pk}&priority={second.pk}"
        f"&left_out={third.pk}"
    )
    assert not NotDuplicate.objects.exists()
    # and opening the compare screen stores nothing either
    assert admin_client.get(response.url).status_code == 200
    assert not NotDuplicate.objects.exists()


def test_compare_confirmed_merge_stores_left_out_pairs_and_undo_forgets_them(
    admin_client, admin_user, group, django_capture_on_commit_callbacks
):
    from dedup.merge import merge_undo

    # Given the comparison of the current customer and the second, the third unticked on the list
    current, second, third = group
    url = f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}&priority={current.pk}&left_out={third.pk}"
    data = _merge_post_data(admin_client, url)
    data["left_out"] = [third.pk]
    # When the manager confirms the merge
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(_url("compare", current.pk), data)
    assert response.status_code == 302
    # Then the merge stored the third as not a duplicate of the merged records
    job = MergeJob.objects.get()
    assert job.status == MergeJob.Status.DONE, job.error
    pairs = set(NotDuplicate.objects.values_list("low_id", "high_id"))
    assert pairs == {tuple(sorted([current.pk, third.pk])), tuple(sorted([second.pk, third.pk]))}
    # and undoing the merge forgets those pairs, so the third is a duplicate again
    with django_capture_on_commit_callbacks(execute=True):
        merge_undo(job=job, user=admin_user)
    assert not NotDuplicate.objects.exists()


def test_compare_undo_keeps_a_pair_confirmed_before_the_merge(admin_user, group, django_capture_on_commit_callbacks):
    from dedup.engine.not_duplicates import not_duplicate_mark
    from dedup.merge import merge_job_create, merge_job_run, merge_undo

    # Given a pair a manager confirmed as not duplicates earlier
    current, second, third = group
    not_duplicate_mark(entity="customer", pair=(current.pk, third.pk), user=admin_user)
    # When a merge leaving the third out runs and is undone
    with django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=admin_user, survivor=current, absorbed=[second], left_out=[third.pk])
    merge_job_run(job_id=job.pk)
    merge_undo(job=MergeJob.objects.get(pk=job.pk), user=admin_user)
    # Then only the pair the merge wrote is forgotten; the earlier decision stays
    assert set(NotDuplicate.objects.values_list("low_id", "high_id")) == {tuple(sorted([current.pk, third.pk]))}


def test_duplicates_priority_must_be_ticked(admin_client, group):
    # Given a customer with two duplicates
    current, second, third = group

    # When the unticked record is chosen as priority
    response = admin_client.post(
        _url("duplicates", current.pk),
        {"priority": third.pk, "shown": [second.pk, third.pk], "include": [second.pk], "action": "compare"},
    )

    # Then the list comes back with the error and nothing is remembered
    assert response.status_code == 200
    assert "The priority record must be ticked." in response.content.decode()
    assert not NotDuplicate.objects.exists()


# --- Compare and merge -------------------------------------------------------------------------------------


def test_compare_screen_shows_columns_defaults_and_summary(admin_client, group):
    # Given three duplicates; the priority has no position, no email; the others have notes and an order
    current, second, third = group
    factories.NoteFactory.create_batch(2, content_object=second)
    factories.NoteFactory(content_object=third)
    factories.OrderFactory(customer=third)

    # When the compare screen is opened with the current record as priority
    response = admin_client.get(
        _url("compare", current.pk), {"records": [current.pk, second.pk, third.pk], "priority": current.pk}
    )
    html = response.content.decode()

    # Then there is one column per record, the empty position takes the second's value by default
    assert response.status_code == 200
    assert html.count('class="dedup-record-col') == 3
    position = re.search(r'data-field="position".*?</tr>', html, re.S).group(0)
    assert re.search(rf'value="{second.pk}" checked> <span class="dedup-value">Buyer', position)
    # the email of the second is in the united emails, and the summary says what will happen
    assert "ivan@example.com" in re.search(r'data-field="emails".*?</tr>', html, re.S).group(0)
    assert f"{record_label(current)} stays; 2 records will be archived; 1 order, 3 notes move" in html
    assert "Merge 3 records" in html
    # hidden versions as the screen saw them
    assert f'name="expected_{second.pk}" value="{second.updated_at.isoformat()}"' in html


def test_compare_merge_queues_job_and_runs_it(admin_client, admin_user, group, django_capture_on_commit_callbacks):
    # Given three duplicates, the second chosen as priority; the first has two notes, the third an order
    current, second, third = group
    factories.NoteFactory.create_batch(2, content_object=current)
    order = factories.OrderFactory(customer=third)
    compare_url = f"{_url('compare', current.pk)}?records={second.pk}&records={current.pk}&records={third.pk}"
    data = _merge_post_data(admin_client, f"{compare_url}&priority={second.pk}")

    # When the manager merges (the worker runs the task when the job is committed)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(_url("compare", current.pk), data)

    # Then the job was queued by the manager, the card of the survivor opens with the message
    assert response.status_code == 302 and response.url == _url("change", second.pk)
    job = MergeJob.objects.get()
    assert job.created_by == admin_user and job.survivor_id == second.pk
    assert job.absorbed_ids == [current.pk, third.pk]
    assert job.status == MergeJob.Status.DONE, job.error
    follow = admin_client.get(response.url)
    assert any("Merge queued" in message for message in _messages(follow))
    # and everything moved to the survivor; the others are archived
    assert Note.objects.filter(object_id=second.pk, text__startswith="").count() >= 2
    assert Order.objects.get(pk=order.pk).customer_id == second.pk
    assert set(Customer.objects.filter(is_archived=True).values_list("pk", flat=True)) == {current.pk, third.pk}


def test_compare_merge_takes_chosen_value(admin_client, group, django_capture_on_commit_callbacks):
    # Given two duplicates with different positions
    current, second, _third = group
    Customer.objects.filter(pk=current.pk).update(position="Head of purchasing")
    compare_url = f"{_url('compare', current.pk)}?records={second.pk}&records={current.pk}&priority={second.pk}"
    data = _merge_post_data(admin_client, compare_url)

    # When the manager picks the absorbed record's position
    data["choice_position"] = current.pk
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_url("compare", current.pk), data)

    # Then the survivor got it
    assert Customer.objects.get(pk=second.pk).position == "Head of purchasing"


def test_compare_stale_screen_fails_job_with_reason(admin_client, group, django_capture_on_commit_callbacks):
    # Given a compare screen opened on two duplicates
    current, second, _third = group
    compare_url = f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}"
    data = _merge_post_data(admin_client, compare_url)

    # When someone else edits the second record before the manager merges
    edited = Customer.objects.get(pk=second.pk)
    edited.position = "Changed meanwhile"
    edited.save()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_url("compare", current.pk), data)

    # Then the job failed, saying why, and nothing was merged
    job = MergeJob.objects.get()
    assert job.status == MergeJob.Status.FAILED
    assert "was changed by someone else" in job.error
    assert not Customer.objects.filter(is_archived=True).exists()


def test_compare_refuses_archived_records(admin_client, group):
    # Given a duplicate that was merged away meanwhile
    current, second, _third = group
    Customer.objects.filter(pk=second.pk).update(is_archived=True, merged_into=current)

    # When the compare screen is opened with it
    response = admin_client.get(
        _url("compare", current.pk), {"records": [current.pk, second.pk]}, follow=True
    )

    # Then the manager is back on the card with the reason
    assert any("already merged" in message for message in _messages(response))


def test_compare_bad_record_ids_are_refused(admin_client, group):
    # Given a customer's card
    current = group[0]

    # When the compare screen gets ids that are not numbers
    response = admin_client.get(_url("compare", current.pk), {"records": ["x"]}, follow=True)

    # Then the card shows an error instead of a crash
    assert any("not understood" in message for message in _messages(response))


# --- Permissions -------------------------------------------------------------------------------------------


def test_permissions_without_change_permission_denied(client, group):
    # Given a manager who may only view customers
    manager = _user("crm.view_customer", "dedup.merge_records")
    current = group[0]
    _client_for(client, manager)

    # When they open the list, the compare screen and the history
    # Then each is refused
    assert client.get(_url("duplicates", current.pk)).status_code == 403
    assert client.get(_url("compare", current.pk), {"records": [group[1].pk]}).status_code == 403
    assert client.get(_url("merge_history", current.pk)).status_code == 403


def test_permissions_without_merge_permission_no_button_and_post_refused(client, group):
    # Given a manager who may change customers but not merge
    manager = _user("crm.view_customer", "crm.change_customer")
    current, second, _third = group
    _client_for(client, manager)
    compare_url = f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}"

    # When they open the list and the compare screen
    listing = client.get(_url("duplicates", current.pk), {"fragment": "1"}).content.decode()
    page = client.get(compare_url)

    # Then they see the records but no merge buttons, and a forged POST is refused
    assert "Compare and merge" not in listing
    assert page.status_code == 200 and "Merge 2 records" not in page.content.decode()
    data = {"priority": current.pk, "records": [current.pk, second.pk]}
    assert client.post(_url("compare", current.pk), data).status_code == 403
    assert not MergeJob.objects.exists()


def test_permissions_without_merge_permission_can_still_dismiss(client, group):
    # Given a manager who may change customers but not merge
    _client_for(client, _user("crm.view_customer", "crm.change_customer"))
    current, second, third = group

    # When they untick a false match and confirm, then try "Compare and merge" by hand
    dismissed = client.post(
        _url("duplicates", current.pk),
        {"priority": current.pk, "shown": [second.pk, third.pk], "include": [second.pk], "action": "dismiss"},
    )
    compared = client.post(
        _url("duplicates", current.pk),
        {"priority": current.pk, "shown": [second.pk], "include": [second.pk], "action": "compare"},
    )

    # Then the false match is remembered, but the way to the merge is refused
    assert dismissed.status_code == 302
    assert NotDuplicate.objects.count() == 1
    assert compared.status_code == 403


def test_permissions_manager_with_merge_permission_merges(client, group, django_capture_on_commit_callbacks):
    # Given a non-superuser manager with the change permission on customers and their contact rows, and merge
    manager = _user(
        "crm.view_customer", "crm.change_customer", "crm.change_phone", "crm.change_email", "dedup.merge_records"
    )
    current, second, _third = group
    _client_for(client, manager)
    data = _merge_post_data(client, f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}")

    # When they merge
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url("compare", current.pk), data)

    # Then the merge ran for them
    assert response.status_code == 302
    assert MergeJob.objects.get().status == MergeJob.Status.DONE


def test_permissions_merge_refused_when_it_would_move_rows_the_user_may_not_change(client, group):
    # Given a manager who may change and merge customers and their contact rows, but not orders or deals,
    # and a duplicate that has an order
    manager = _user(
        "crm.view_customer", "crm.change_customer", "crm.change_phone", "crm.change_email", "dedup.merge_records"
    )
    current, second, _third = group
    factories.OrderFactory(customer=second)
    _client_for(client, manager)
    compare = f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}"

    # When they open the compare screen and post the merge anyway
    page = client.get(compare)
    posted = client.post(_url("compare", current.pk), {"priority": current.pk, "records": [current.pk, second.pk]})

    # Then the screen has no merge button and says why; the post is forbidden and nothing is queued
    html = page.content.decode()
    assert page.status_code == 200 and "Merge 2 records" not in html
    assert "The merge would move orders, which you may not change" in html
    assert posted.status_code == 403
    assert not MergeJob.objects.exists()
    second.refresh_from_db()
    assert not second.is_archived and second.orders.count() == 1


def test_permissions_rows_of_a_kind_nobody_moves_need_no_permission(client, group):
    # Given the same manager, and a duplicate with no order, deal or note
    manager = _user(
        "crm.view_customer", "crm.change_customer", "crm.change_phone", "crm.change_email", "dedup.merge_records"
    )
    current, _second, third = group
    _client_for(client, manager)

    # When they open the compare screen
    page = client.get(f"{_url('compare', current.pk)}?records={current.pk}&records={third.pk}")

    # Then they may merge
    assert "Merge 2 records" in page.content.decode()


# --- History and undo --------------------------------------------------------------------------------------


@pytest.fixture
def merged(admin_client, group, django_capture_on_commit_callbacks):
    """Merge the second and third customers into the first through the screens; return the records and job."""
    current, second, third = group
    factories.NoteFactory(content_object=second, text="Called about the delivery")
    data = _merge_post_data(
        admin_client, f"{_url('compare', current.pk)}?records={current.pk}&records={second.pk}&records={third.pk}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_url("compare", current.pk), data)
    job = MergeJob.objects.get()
    assert job.status == MergeJob.Status.DONE, job.error
    return current, second, third, job


def test_history_on_card_with_undo_link(admin_client, merged):
    # Given a finished merge into the current customer
    current, second, third, job = merged

    # When the survivor's card is opened
    html = admin_client.get(_url("change", current.pk)).content.decode()

    # Then it shows the merge history with an Undo link to the confirmation
    assert 'id="merge-history"' in html
    assert f"Customer #{second.pk}, Customer #{third.pk}" in html
    assert f'{_url("merge_history", current.pk)}?undo={job.pk}#undo' in html


def test_history_undo_confirm_and_restore(admin_client, merged, django_capture_on_commit_callbacks):
    # Given a finished merge
    current, second, third, job = merged

    # When the manager asks to undo it, sees the confirmation and confirms
    confirm = admin_client.get(_url("merge_history", current.pk), {"undo": job.pk})
    assert "Yes, undo the merge" in confirm.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(_url("merge_history", current.pk), {"job": job.pk}, follow=True)

    # Then the undo is queued as a background job (the card says so), and once it ran the absorbed customers
    # are back with their note and the manager is notified
    assert any("Undo queued; you will be notified" in message for message in _messages(response))
    assert not Customer.objects.filter(is_archived=True).exists()
    assert Note.objects.filter(object_id=second.pk, text="Called about the delivery").exists()
    job.refresh_from_db()
    assert job.status == MergeJob.Status.UNDONE
    assert Notification.objects.filter(job=job, message__startswith="Undo finished").exists()


def test_history_undo_error_shown_as_message(admin_client, merged, django_capture_on_commit_callbacks):
    # Given a merge that was already undone
    current, _second, _third, job = merged
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(_url("merge_history", current.pk), {"job": job.pk})

    # When the manager posts the undo again (a second tab)
    response = admin_client.post(_url("merge_history", current.pk), {"job": job.pk}, follow=True)

    # Then an admin error message says why, nothing crashes
    assert response.status_code == 200
    assert any("was not undone" in message for message in _messages(response))


def test_history_undo_needs_merge_permission(client, merged):
    # Given a manager who may change customers but not merge
    current, _second, _third, job = merged
    _client_for(client, _user("crm.view_customer", "crm.change_customer"))

    # When they see the history and forge an undo
    page = client.get(_url("merge_history", current.pk)).content.decode()
    response = client.post(_url("merge_history", current.pk), {"job": job.pk})

    # Then there is no Undo link and the POST is refused
    assert "dedup-undo-link" not in page
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE


def test_archived_record_list_leads_to_survivor(admin_client, merged):
    # Given a customer merged into another
    current, second, _third, _job = merged

    # When its duplicates list is opened from an old link
    response = admin_client.get(_url("duplicates", second.pk))

    # Then the manager is sent to the survivor's card
    assert response.status_code == 302 and response.url == _url("change", current.pk)


def test_order_compare_keeps_priority_number(admin_client, db):
    # Given two duplicate orders
    first = factories.OrderFactory(email="ivan@example.com", total=Decimal("10.00"))
    second = factories.OrderFactory(email="ivan@example.com", total=Decimal("20.00"))

    # When they are compared
    response = admin_client.get(
        _url("compare", first.pk, model="order"), {"records": [first.pk, second.pk]}
    )
    html = response.content.decode()

    # Then the order number (unique) can only stay the priority's, the total can be picked
    number = re.search(r'data-field="number".*?</tr>', html, re.S).group(0)
    assert number.count('type="radio"') == 1
    total = re.search(r'data-field="total".*?</tr>', html, re.S).group(0)
    assert total.count('type="radio"') == 2


# --- The card keeps up: the state it polls -----------------------------------------------------------------------


def _state_url(record):
    from django.contrib.contenttypes.models import ContentType

    return f"/admin/dedup/records/{ContentType.objects.get_for_model(record).pk}/{record.pk}/state/"


@pytest.mark.parametrize("merges", [1, 6])
def test_card_state_costs_the_same_queries_however_many_merges(admin_client, merges, django_assert_max_num_queries):
    from dedup.merge import records_merge

    survivor = factories.CustomerFactory()
    for _index in range(merges):
        records_merge(survivor=survivor, absorbed=[factories.CustomerFactory()], choices={}, user=None)
    with django_assert_max_num_queries(4):  # session, user, the record, its newest merge
        response = admin_client.get(_state_url(survivor))
    assert response.status_code == 200 and response.json()["merged_into"] is None


def test_card_state_changes_with_a_merge_and_says_where_an_absorbed_record_went(admin_client, admin_user):
    from dedup.merge import merge_job_create, merge_job_run

    survivor, absorbed = factories.CustomerFactory(), factories.CustomerFactory()
    response = admin_client.get(f"/admin/crm/customer/{survivor.pk}/change/")
    drawn = response.context["dedup_card"].config["state"]
    assert response.context["dedup_card"].config["stateUrl"] == _state_url(survivor)
    assert admin_client.get(_state_url(survivor)).json()["stamp"] == drawn

    job = merge_job_create(user=admin_user, survivor=survivor, absorbed=[absorbed])
    assert admin_client.get(_state_url(survivor)).json()["stamp"] == drawn  # queued: nothing changed yet
    merge_job_run(job_id=job.pk)

    assert admin_client.get(_state_url(survivor)).json()["stamp"] != drawn
    # The card opened again is drawn with the new state (from the record and the merges it shows)
    redrawn = admin_client.get(f"/admin/crm/customer/{survivor.pk}/change/").context["dedup_card"].config["state"]
    assert redrawn != drawn and admin_client.get(_state_url(survivor)).json()["stamp"] == redrawn
    gone = admin_client.get(_state_url(absorbed)).json()
    assert gone["merged_into"] == survivor.pk and gone["url"] == f"/admin/crm/customer/{survivor.pk}/change/"


def test_card_state_refuses_unknown_kinds_bad_ids_and_users_without_permission(client, admin_client):
    from django.contrib.contenttypes.models import ContentType

    from dedup.models import Rule

    customer = factories.CustomerFactory()
    rule_type = ContentType.objects.get_for_model(Rule).pk
    assert admin_client.get(f"/admin/dedup/records/{rule_type}/1/state/").status_code == 404
    assert admin_client.get("/admin/dedup/records/999999/1/state/").status_code == 404
    assert admin_client.get(_state_url(customer).replace(f"/{customer.pk}/", "/abc/")).status_code == 400
    client.force_login(factories.UserFactory(is_staff=True))
    assert client.get(_state_url(customer)).status_code == 403
