"""The admin of the automatic scan (dedup/admin_queue.py): the review queue "Duplicate groups" and scan runs."""
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from dedup import review
from dedup.models import DuplicateGroup, MergeJob, NotDuplicate, Notification, Rule, ScanRun
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules

pytestmark = pytest.mark.django_db

QUEUE = reverse("admin:dedup_duplicategroup_changelist")
RUNS = reverse("admin:dedup_scanrun_changelist")


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


@pytest.fixture
def scan(django_capture_on_commit_callbacks):
    def run() -> ScanRun:
        with django_capture_on_commit_callbacks(execute=True):
            started = review.scan_start()
        started.refresh_from_db()
        return started

    return run


def pair(index=0, owner=None, first="Ivan", last="Petrov"):
    phone = f"+7 912 {index:03d}-45-67"
    return (
        customer_with(first, last, phones=[phone], owner=owner),
        customer_with(first, last, phones=[phone.replace("+7", "8")], owner=owner),
    )


def user_with(*codenames, username="manager"):
    user = factories.UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def action(client, name, groups, **extra):
    return client.post(
        QUEUE, {"action": name, "_selected_action": [group.pk for group in groups], **extra}, follow=True
    )


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def test_queue_lists_open_groups_with_records_reasons_and_status(admin_client, scan):
    # Given two pairs found by a scan, one of them already dismissed
    first, second = pair(0)
    other_pair = pair(1, first="Olga", last="Smirnova")
    scan()
    dismissed = DuplicateGroup.objects.get(members__record_id=other_pair[0].pk)
    review.group_dismiss(group=dismissed, user=None)

    # When a manager opens the queue
    response = admin_client.get(QUEUE)

    # Then it shows the open group by default: entity, size, the records with links, why, and a compare button
    page = response.content.decode()
    assert response.status_code == 200
    assert "Duplicate groups" in page
    assert "Petrov Ivan" in page and "Smirnova" not in page
    assert reverse("admin:crm_customer_change", args=[first.pk]) in page
    assert "same phone" in page
    assert "Customers" in page
    assert "Compare and merge" in page
    # And the status filter shows the dismissed one when asked
    page = admin_client.get(QUEUE, {"status": "dismissed"}).content.decode()
    assert "Smirnova" in page and "Petrov Ivan" not in page
    page = admin_client.get(QUEUE, {"status": "all"}).content.decode()
    assert "Smirnova" in page and "Petrov Ivan" in page


def test_queue_filters_by_entity_rule_and_owner(admin_client, scan):
    # Given a customer pair of anna's by phone, a customer pair of boris's by email, and a pair of companies
    anna, boris = factories.UserFactory(username="anna"), factories.UserFactory(username="boris")
    pair(0, owner=anna)
    customer_with("Olga", "Smirnova", emails=["olga@example.com"], owner=boris)
    customer_with("Olga", "Smirnova", emails=["OLGA@example.com"], owner=boris)
    factories.CompanyFactory(name="Acme LLC")
    factories.CompanyFactory(name="ACME Inc.")
    scan()
    email_rule = Rule.objects.get(entity="customer", name="Same email")

    def shown(**query):
        response = admin_client.get(QUEUE, query)
        return {group.pk for group in response.context["cl"].result_list}

    def groups_of(**lookup):
        return set(DuplicateGroup.objects.filter(**lookup).values_list("pk", flat=True))

    # When the queue is filtered
    # Then each filter keeps only its groups
    assert shown(entity="company") == groups_of(entity="company") and len(shown(entity="company")) == 1
    assert shown(entity="customer") == groups_of(entity="customer") and len(shown(entity="customer")) == 2
    assert shown(rule=email_rule.pk) == groups_of(rules=email_rule)
    assert len(shown(rule=email_rule.pk)) == 1
    assert shown(owner=anna.pk) == groups_of(members__owner=anna)
    assert shown(owner=boris.pk) == groups_of(members__owner=boris) != shown(owner=anna.pk)
    # And the filters offer the managers and rules by name
    page = admin_client.get(QUEUE).content.decode()
    assert "anna" in page and "boris" in page and "Customers: Same email" in page


def test_queue_page_queries_do_not_grow_with_groups(admin_client, scan, django_assert_max_num_queries):
    # Given a queue of two groups, measured
    for index in range(2):
        pair(index, owner=factories.UserFactory(username=f"owner{index}"))
    scan()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        admin_client.get(QUEUE)

    # When the queue holds twenty groups
    for index in range(2, 20):
        pair(index, owner=factories.UserFactory(username=f"owner{index}"))
    scan()
    assert DuplicateGroup.objects.filter(status="open").count() == 20

    # Then the page needs no more queries
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = admin_client.get(QUEUE)
    assert len(response.context["cl"].result_list) == 20


def test_queue_dismiss_action_stores_pairs_and_the_group_never_returns(client, scan):
    # Given a trio in the queue and a manager who may change groups and customers
    first, second = pair(0)
    third = customer_with("I.", "Petrov", phones=["+79120004567"])
    scan()
    group = DuplicateGroup.objects.get()
    manager = user_with("view_duplicategroup", "change_duplicategroup", "change_customer")
    client.force_login(manager)

    # When the manager dismisses it from the queue and the scan runs again
    response = action(client, "dismiss_groups", [group])
    run = scan()

    # Then every pair of the trio is stored as not a duplicate, and no group comes back
    assert "1 group dismissed" in " ".join(messages_of(response))
    pairs = set(NotDuplicate.objects.values_list("low_id", "high_id"))
    ids = sorted([first.pk, second.pk, third.pk])
    assert pairs == {(ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])}
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.DISMISSED and group.resolved_by == manager
    assert run.stats["customer"]["groups"] == 0
    assert not DuplicateGroup.objects.filter(status="open").exists()


def test_queue_dismiss_needs_change_permission_on_the_records(client, scan):
    # Given a pair in the queue and a manager who may work the queue but not change customers
    pair(0)
    scan()
    group = DuplicateGroup.objects.get()
    client.force_login(user_with("view_duplicategroup", "change_duplicategroup", "view_customer"))

    # When the manager dismisses it, by the list's action and by the group's own button
    by_action = action(client, "dismiss_groups", [group])
    by_button = client.post(reverse("admin:dedup_duplicategroup_dismiss", args=[group.pk]), follow=True)

    # Then nothing is written, the manager is told why, and the group page offers no dismiss button
    assert not NotDuplicate.objects.exists()
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.OPEN
    for response in (by_action, by_button):
        assert "You may not change customers" in " ".join(messages_of(response))
    page = client.get(reverse("admin:dedup_duplicategroup_change", args=[group.pk]))
    assert page.context["can_dismiss"] is False


def test_queue_merge_action_merges_in_background_and_closes_group(
    client, scan, django_capture_on_commit_callbacks
):
    # Given a pair in the queue and a manager allowed to merge customers
    older, newer = pair(0)
    newer.position = "Buyer"
    newer.save()
    scan()
    group = DuplicateGroup.objects.get()
    manager = user_with(
        "view_duplicategroup", "change_duplicategroup", "change_customer", "change_phone", "merge_records"
    )
    client.force_login(manager)

    # When the manager merges it from the queue (the merge runs as a background job)
    with django_capture_on_commit_callbacks(execute=True):
        response = action(client, "merge_groups", [group])

    # Then the newer record was merged into the oldest, the group is merged, the manager notified
    assert "1 merge queued" in " ".join(messages_of(response))
    newer.refresh_from_db()
    older.refresh_from_db()
    assert newer.is_archived and newer.merged_into_id == older.pk and older.position == "Buyer"
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.MERGED
    job = MergeJob.objects.get(pk=group.merge_job_id)
    assert job.status == MergeJob.Status.DONE and job.created_by == manager
    assert Notification.objects.filter(user=manager, job=job).exists()


def test_queue_merge_action_needs_merge_permission(client, scan):
    # Given a pair in the queue and a manager who may change groups but not merge
    pair(0)
    scan()
    group = DuplicateGroup.objects.get()
    client.force_login(user_with("view_duplicategroup", "change_duplicategroup", "change_customer"))

    # When the manager looks at the queue
    response = client.get(QUEUE)

    # Then the merge action is not offered, and posting it anyway merges nothing
    choices = [value for value, _label in response.context["action_form"].fields["action"].choices]
    assert "merge_groups" not in choices and "dismiss_groups" in choices
    action(client, "merge_groups", [group])
    assert not MergeJob.objects.exists()
    assert client.post(reverse("admin:dedup_duplicategroup_merge", args=[group.pk])).status_code == 403


def test_queue_open_compare_goes_to_the_side_by_side_screen(admin_client, scan):
    # Given a pair in the queue
    first, second = pair(0)
    scan()
    group = DuplicateGroup.objects.get()

    # When a manager opens it on the compare screen
    response = action(admin_client, "open_compare", [group])

    # Then the compare screen of the entity shows both records, the oldest as priority
    url, _status = response.redirect_chain[-1]
    parts = urlsplit(url)
    assert parts.path == reverse("admin:crm_customer_compare", args=[first.pk])
    query = parse_qs(parts.query)
    assert sorted(map(int, query["records"])) == sorted([first.pk, second.pk])
    assert query["priority"] == [str(first.pk)]
    assert response.status_code == 200


def test_group_page_shows_members_and_its_buttons_work(admin_client, scan):
    # Given a pair in the queue
    first, second = pair(0, owner=factories.UserFactory(username="anna"))
    scan()
    group = DuplicateGroup.objects.get()

    # When a manager opens the group
    page = admin_client.get(reverse("admin:dedup_duplicategroup_change", args=[group.pk])).content.decode()

    # Then it lists its records with their manager, and offers compare, merge and dismiss
    assert f"#{first.pk}" in page and f"#{second.pk}" in page and "anna" in page
    assert reverse("admin:dedup_duplicategroup_dismiss", args=[group.pk]) in page
    assert reverse("admin:dedup_duplicategroup_merge", args=[group.pk]) in page
    assert "Compare and merge" in page

    # And dismissing from the page (POST only) dismisses it
    assert admin_client.get(reverse("admin:dedup_duplicategroup_dismiss", args=[group.pk])).status_code == 405
    admin_client.post(reverse("admin:dedup_duplicategroup_dismiss", args=[group.pk]))
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.DISMISSED


def test_run_scan_now_starts_the_scan_and_fills_the_queue(admin_client, django_capture_on_commit_callbacks):
    # Given a pair nobody has scanned yet
    pair(0)

    # When an admin presses "Run scan now" on the queue
    assert "Run scan now" in admin_client.get(QUEUE).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:dedup_scanrun_run_now"), {"next": QUEUE}, follow=True)

    # Then a run started by the admin scanned (same path as the schedule) and the queue has the pair
    run = ScanRun.objects.get()
    assert run.trigger == ScanRun.Trigger.ADMIN and run.status == ScanRun.Status.DONE
    assert run.requested_by.username == "admin"
    assert f"Scan #{run.pk} started" in " ".join(messages_of(response))
    assert DuplicateGroup.objects.filter(status="open").count() == 1


def test_run_scan_now_is_refused_while_a_scan_runs(admin_client):
    # Given a scan still running
    pair(0)
    running = review.scan_start(dispatch=False)

    # When an admin presses "Run scan now"
    response = admin_client.post(reverse("admin:dedup_scanrun_run_now"), {"next": QUEUE}, follow=True)

    # Then no second scan starts and the admin is told why
    assert ScanRun.objects.count() == 1
    assert f"#{running.pk}" in " ".join(messages_of(response))
    assert "already running" in " ".join(messages_of(response))


@pytest.mark.parametrize(
    "target", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)", "\\\\evil.example"]
)
def test_run_scan_now_redirects_only_to_this_site(admin_client, target):
    # Given a scan still running (so "Run scan now" goes back to the posted page)
    pair(0)
    review.scan_start(dispatch=False)

    # When a forged form posts "Run scan now" with a foreign "next"
    response = admin_client.post(reverse("admin:dedup_scanrun_run_now"), {"next": target})

    # Then the admin lands on the scan runs page, never on the foreign address
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:dedup_scanrun_changelist")


def test_run_scan_now_needs_permission(client):
    # Given a manager who may only review the queue
    client.force_login(user_with("view_duplicategroup", "change_duplicategroup"))

    # When the manager posts "Run scan now"
    response = client.post(reverse("admin:dedup_scanrun_run_now"))

    # Then it is forbidden and the button is not shown
    assert response.status_code == 403 and not ScanRun.objects.exists()
    assert "Run scan now" not in client.get(QUEUE).content.decode()


def test_scan_runs_page_shows_progress_while_running(admin_client, settings):
    # Given a scan split in parts, one of them done
    settings.DEDUP_SCAN_CHUNK_RECORDS = 10
    for index in range(15):
        pair(index)
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunks = list(run.chunks.order_by("index"))
    review.scan_chunk_process(chunk_id=chunks[0].pk)

    # When an admin opens the scan runs
    page = admin_client.get(RUNS).content.decode()

    # Then the running scan shows its progress, and the page refreshes itself until it is done
    assert f"1 of {len(chunks)} parts" in page
    assert 'http-equiv="refresh"' in page
    assert "A scan is running" in page
    detail = admin_client.get(reverse("admin:dedup_scanrun_change", args=[run.pk])).content.decode()
    assert f"1 of {len(chunks)} parts" in detail and 'http-equiv="refresh"' in detail


def test_scan_runs_page_shows_a_scan_being_planned(admin_client, django_capture_on_commit_callbacks):
    # Given a scan just started, its parts not planned yet
    pair(0)
    with django_capture_on_commit_callbacks(execute=False):
        review.scan_start()

    # When an admin opens the scan runs
    page = admin_client.get(RUNS).content.decode()

    # Then it says the scan is being planned, and the page refreshes itself
    assert "planning" in page and 'http-equiv="refresh"' in page


def test_scan_run_page_shows_figures_per_entity(admin_client, scan):
    # Given a finished scan that found a pair
    pair(0)
    run = scan()

    # When an admin opens it
    page = admin_client.get(reverse("admin:dedup_scanrun_change", args=[run.pk])).content.decode()
    listing = admin_client.get(RUNS).content.decode()

    # Then it shows per entity the records scanned, groups found and new ones, and no refresh
    assert "records scanned" in page and "new since last run" in page
    row = re.search(r"<tr><th>Customers</th>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td>([^<]*)</td>", row)[:3] == ["2", "1", "1"]
    assert 'http-equiv="refresh"' not in page
    assert "1 groups in 2 records, 1 new" in listing


def test_failed_scan_shows_its_reason(admin_client):
    # Given a scan whose part failed for good
    pair(0)
    run = review.scan_start(entities=["customer"], dispatch=False)
    review.scan_chunk_fail(chunk_id=run.chunks.get().pk, reason="database went away")

    # When an admin opens the scan runs
    page = admin_client.get(RUNS).content.decode()

    # Then the failure and its reason are shown
    assert "failed" in page and "database went away" in page


def test_queue_links_to_the_editable_schedule(admin_client):
    # Given the periodic task the migration creates
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    schedule, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="3")
    task, _ = PeriodicTask.objects.get_or_create(
        name="Daily duplicate scan", defaults={"task": "dedup.scan_scheduled", "crontab": schedule}
    )

    # When an admin follows "Schedule" from the queue
    page = admin_client.get(QUEUE).content.decode()
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])

    # Then the periodic task's page opens, where its time and on/off can be changed
    assert url in page
    response = admin_client.get(url)
    assert response.status_code == 200 and b"Daily duplicate scan" in response.content
