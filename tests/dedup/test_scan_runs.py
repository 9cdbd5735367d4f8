"""The automatic scan's services (dedup/review.py): runs, chunks, join, the queue kept current, auto-merge;
and the data migration that schedules it."""
import importlib.util
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.celery import app as celery_app
from crm.models import Customer
from dedup import review
from dedup.merge import merge_undo, records_merge
from dedup.messages import render
from dedup.models import DuplicateGroup, MergeJob, NotDuplicate, Notification, Rule, ScanChunk, ScanRun
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, make_rule

pytestmark = pytest.mark.django_db

PHONE = "+7 912 345-67-89"


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


@pytest.fixture
def run_scan(django_capture_on_commit_callbacks):
    """Start a scan the way the schedule does; chunks and join run (eagerly) once the run is committed."""

    def run(**kwargs) -> ScanRun:
        with django_capture_on_commit_callbacks(execute=True):
            started = review.scan_start(trigger=kwargs.pop("trigger", ScanRun.Trigger.SCHEDULE), **kwargs)
        started.refresh_from_db()
        return started

    return run


def open_groups(entity="customer"):
    return DuplicateGroup.objects.filter(entity=entity, status=DuplicateGroup.Status.OPEN)


def member_sets(groups) -> set[frozenset]:
    return {frozenset(group.members.values_list("record_id", flat=True)) for group in groups}


def twins(phone=PHONE, **fields):
    """Two customers with one phone written two ways."""
    first = customer_with("Ivan", "Petrov", phones=[phone], **fields)
    second = customer_with("Ivan", "Petrov", phones=[phone.replace("+7", "8")], **fields)
    return first, second


# --- Runs -------------------------------------------------------------------------------------------------------


def test_scan_start_fills_run_figures_and_queue(run_scan):
    # Given two pairs of duplicate customers (phone; email) owned by two managers, and a customer with no twin
    anna, boris = factories.UserFactory(username="anna"), factories.UserFactory(username="boris")
    ivan, ivan_again = twins(owner=anna)
    olga = customer_with("Olga", "Smirnova", emails=["olga@example.com"], owner=boris)
    olga_again = customer_with("Olga", "Smirnova-Ivanova", emails=["OLGA@example.com"])
    customer_with("Petr", "Sidorov", phones=["+7 903 000-00-01"])

    # When the daily scan runs
    run = run_scan()

    # Then the run is done with its figures per entity
    assert run.status == ScanRun.Status.DONE and run.finished_at is not None and run.failure_reason == ""
    assert run.stats["customer"]["records"] == 5
    assert run.stats["customer"]["groups"] == 2 and run.stats["customer"]["new"] == 2
    assert run.seconds is not None and run.seconds >= 0
    # And the queue holds the two groups, with why, which rule, and their managers
    assert member_sets(open_groups()) == {frozenset({ivan.pk, ivan_again.pk}), frozenset({olga.pk, olga_again.pk})}
    phone_group = open_groups().get(members__record_id=ivan.pk)
    assert phone_group.size == 2
    assert any("phone" in render(reason) for reason in phone_group.reasons)
    assert [rule.name for rule in phone_group.rules.all()] == ["Same phone"]
    assert set(phone_group.members.values_list("owner__username", flat=True)) == {"anna"}
    assert phone_group.first_run == run and phone_group.last_run == run
    assert phone_group.newest_activity is not None


def test_scan_start_scans_only_entities_with_active_rules(run_scan):
    # Given the order rules switched off
    Rule.objects.filter(entity="order").update(active=False)

    # When the scan runs
    run = run_scan()

    # Then orders are not scanned, customers are
    assert "order" not in run.entities and "order" not in run.stats
    assert "customer" in run.entities


def test_scan_start_again_finds_the_same_groups_not_copies(run_scan):
    # Given a scan that found a pair
    twins()
    first_run = run_scan()
    group = open_groups().get()

    # When the scan runs again with nothing changed
    second_run = run_scan()

    # Then the same group is seen again: no copy, nothing new
    assert open_groups().count() == 1 and open_groups().get().pk == group.pk
    assert second_run.stats["customer"]["groups"] == 1 and second_run.stats["customer"]["new"] == 0
    assert second_run.stats["customer"]["updated"] == 0 and second_run.stats["customer"]["closed"] == 0
    group.refresh_from_db()
    assert group.first_run == first_run and group.last_run == first_run  # found again, nothing to change


def test_scan_start_is_refused_while_another_scan_runs():
    # Given a scan whose chunks are still out with the workers
    twins()
    running = review.scan_start(dispatch=False)

    # When the schedule, the admin and the command line try to start another
    with pytest.raises(review.ScanAlreadyRunning) as refused:
        review.scan_start(trigger=ScanRun.Trigger.ADMIN)
    from_schedule = review.scan_request(trigger=ScanRun.Trigger.SCHEDULE)

    # Then none starts, and the message names the running scan
    assert from_schedule is None
    assert f"#{running.pk}" in str(refused.value)
    assert ScanRun.objects.count() == 1


def test_scan_start_commits_the_run_before_planning_it(django_capture_on_commit_callbacks):
    # Given a pair
    twins()

    # When a scan is started for the workers (the admin's button, the schedule)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = review.scan_start(trigger=ScanRun.Trigger.ADMIN)

    # Then the caller gets the running run at once, its parts not planned yet: a task plans them
    assert run.status == ScanRun.Status.RUNNING and not run.chunks.exists()
    assert len(sent) == 1
    with pytest.raises(review.ScanAlreadyRunning):
        review.scan_start()

    # And once the planning task ran, the parts are there, each delivered again harmlessly
    chunk_ids = review.scan_plan(run_id=run.pk)
    again = review.scan_plan(run_id=run.pk)
    assert chunk_ids and again == chunk_ids
    assert run.chunks.count() == len(chunk_ids)
    run.refresh_from_db()
    assert run.stats["customer"]["records"] == 2 and "plan_seconds" in run.stats["customer"]


def test_scan_run_database_allows_one_running_scan():
    # Given a running scan
    ScanRun.objects.create(status=ScanRun.Status.RUNNING)

    # When a second running row is written past the service (two processes racing)
    # Then the database itself refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        ScanRun.objects.create(status=ScanRun.Status.RUNNING)


def test_scan_start_fails_an_abandoned_scan_and_starts(run_scan):
    # Given a scan whose workers died hours ago (no chunk progressed since)
    twins()
    stuck = review.scan_start(dispatch=False)
    ScanRun.objects.filter(pk=stuck.pk).update(heartbeat_at=timezone.now() - review.SCAN_ABANDONED_AFTER * 2)

    # When the next scan starts
    run = run_scan()

    # Then the stuck one is failed with the reason and the new one did the work
    stuck.refresh_from_db()
    assert stuck.status == ScanRun.Status.FAILED and "Abandoned" in stuck.failure_reason
    assert run.status == ScanRun.Status.DONE and open_groups().count() == 1


def test_scan_closes_groups_of_entities_whose_rules_were_switched_off(run_scan):
    # Given a pair in the queue
    twins()
    run_scan()
    group = open_groups().get()

    # When the admin switches the customer rules off and the daily scan runs
    Rule.objects.filter(entity="customer").update(active=False)
    run_scan()

    # Then the group closed itself: no rule would ever find or update it again
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.CLOSED and "No active rule" in group.resolution


def test_scan_start_with_no_active_rules_finishes_at_once(run_scan):
    # Given every rule switched off
    Rule.objects.update(active=False)

    # When the scan starts
    run = run_scan()

    # Then it is done with nothing scanned, and the next scan is not blocked
    assert run.status == ScanRun.Status.DONE and run.entities == [] and run.stats == {}
    assert review.scan_running() is None


def test_scan_start_rejects_unknown_entity():
    with pytest.raises(review.ScanError, match="Unknown entity"):
        review.scan_start(entities=["spaceship"], dispatch=False)
    assert not ScanRun.objects.exists()


# --- Chunks and join --------------------------------------------------------------------------------------------


def many_pairs(count: int) -> list[tuple[Customer, Customer]]:
    """Pairs joined by phone, by email, and a trio joined by a phone and an email in different key ranges."""
    pairs = []
    for index in range(count):
        phone = f"+7 912 {index:03d}-00-00"
        pairs.append(twins(phone=phone))
        email = f"person{index:03d}@example.com"
        first = customer_with("Anna", f"Ivanova{index}", emails=[email])
        pairs.append((first, customer_with("Anna", "X", emails=[email.upper()])))
    return pairs


def test_chunked_scan_finds_the_same_groups_as_one_chunk(settings, run_scan):
    # Given pairs spread over the key space, and a trio linked by a phone (one key range) and an email (another)
    many_pairs(12)
    a = customer_with("Zoe", "A", phones=["+7 999 111-11-11"])
    b = customer_with("Zoe", "B", phones=["8 999 111 11 11"], emails=["aaa-trio@example.com"])
    c = customer_with("Zoe", "C", emails=["AAA-trio@example.com"])
    settings.DEDUP_SCAN_CHUNK_RECORDS = 1_000_000
    one_chunk = run_scan(entities=["customer"])
    expected = member_sets(open_groups())
    DuplicateGroup.objects.all().delete()

    # When the scan is split into several chunks
    settings.DEDUP_SCAN_CHUNK_RECORDS = 10
    chunked = run_scan(entities=["customer"])

    # Then the chunks were several (besides the scored pass's one chunk, dedup/engine/scan_scored.py), and
    # together they found exactly the same groups, the trio whole
    def rule_chunks(run):
        return [chunk for chunk in run.chunks.all() if not (chunk.key_range or {}).get("scored")]

    assert len(rule_chunks(one_chunk)) == 1
    assert len(rule_chunks(chunked)) > 2
    assert member_sets(open_groups()) == expected
    assert frozenset({a.pk, b.pk, c.pk}) in expected
    assert chunked.stats["customer"]["groups"] == len(expected) == 25


def test_scan_chunk_retried_after_crash_does_not_duplicate_results(settings):
    # Given a chunked scan whose first chunk's worker died mid-way (left running, nothing stored)
    settings.DEDUP_SCAN_CHUNK_RECORDS = 10
    many_pairs(8)
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunks = list(run.chunks.order_by("index"))
    assert len(chunks) > 2
    ScanChunk.objects.filter(pk=chunks[0].pk).update(status=ScanChunk.Status.RUNNING, attempts=1)

    # When the chunk is delivered again, every chunk is processed, and the broker redelivers one already done
    review.scan_chunk_process(chunk_id=chunks[0].pk)
    first_result = ScanChunk.objects.get(pk=chunks[0].pk).result
    join_due = [review.scan_chunk_process(chunk_id=chunk.pk)[1] for chunk in chunks[1:]]
    redelivered = review.scan_chunk_process(chunk_id=chunks[0].pk)
    review.scan_join(run_id=run.pk)
    review.scan_join(run_id=run.pk)  # the join delivered twice

    # Then the retried chunk was scanned once more and stored once; the redelivery changed nothing
    retried = ScanChunk.objects.get(pk=chunks[0].pk)
    assert retried.attempts == 2 and retried.status == ScanChunk.Status.DONE
    assert retried.result == first_result
    assert join_due[-1] is True and not any(join_due[:-1])
    assert redelivered == (run.pk, True)
    # And the queue has each group once
    run.refresh_from_db()
    assert run.status == ScanRun.Status.DONE
    assert open_groups().count() == 16 == len(member_sets(open_groups()))


def test_scan_chunk_failing_for_good_fails_the_run_with_reason():
    # Given a scan with a chunk
    twins()
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunk = run.chunks.get()

    # When its task gives up after its retries
    review.scan_chunk_fail(chunk_id=chunk.pk, reason="database went away")

    # Then the run failed and says why; the next scan may start
    run.refresh_from_db()
    assert run.status == ScanRun.Status.FAILED and "database went away" in run.failure_reason
    assert review.scan_running() is None


def test_scan_join_waits_for_every_chunk(settings):
    # Given a chunked scan with one chunk not yet done
    settings.DEDUP_SCAN_CHUNK_RECORDS = 10
    many_pairs(6)
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunks = list(run.chunks.order_by("index"))
    for chunk in chunks[:-1]:
        review.scan_chunk_process(chunk_id=chunk.pk)

    # When a join arrives early
    review.scan_join(run_id=run.pk)

    # Then nothing is joined yet; the run is running and shows its progress
    run.refresh_from_db()
    assert run.status == ScanRun.Status.RUNNING and not open_groups().exists()
    assert review.scan_progress(run) == (len(chunks) - 1, len(chunks))


def test_scan_execute_runs_the_whole_scan_in_process():
    # Given a pair
    first, second = twins()

    # When the command line runs the scan in its own process
    seen = []
    run = review.scan_execute(entities=["customer"], progress=seen.append)

    # Then it is the same kind of run, done, and the queue has the pair
    assert run.trigger == ScanRun.Trigger.COMMAND and run.status == ScanRun.Status.DONE
    assert [chunk.status for chunk in seen] == [ScanChunk.Status.DONE]
    assert member_sets(open_groups()) == {frozenset({first.pk, second.pk})}
    assert [group.ids for group in review.scan_groups(run=run, entity="customer")] == [[first.pk, second.pk]]


# --- Stale groups -----------------------------------------------------------------------------------------------


def test_scan_updates_group_in_place_when_a_record_joins(run_scan):
    # Given a pair in the queue
    first, second = twins()
    run_scan()
    group = open_groups().get()

    # When a third record with the same phone arrives and the scan runs again
    third = customer_with("I.", "Petrov", phones=["+79123456789"])
    run = run_scan()

    # Then the same group holds the three records
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.OPEN and group.size == 3 and group.last_run == run
    assert member_sets([group]) == {frozenset({first.pk, second.pk, third.pk})}
    assert run.stats["customer"]["new"] == 0 and run.stats["customer"]["updated"] == 1


def test_scan_keeps_group_and_adds_the_rule_when_a_second_rule_matches(run_scan):
    # Given a pair found by its phone
    first, second = twins()
    run_scan()
    group = open_groups().get()

    # When both get the same email and the scan runs again
    factories.EmailFactory(content_object=first, address="ivan@example.com")
    factories.EmailFactory(content_object=second, address="Ivan@Example.com")
    run_scan()

    # Then the same group now names both rules and both reasons
    group.refresh_from_db()
    assert open_groups().get().pk == group.pk
    assert set(group.rules.values_list("name", flat=True)) == {"Same phone", "Same email"}
    assert any("email" in render(reason) for reason in group.reasons)
    assert any("phone" in render(reason) for reason in group.reasons)


def test_scan_closes_group_whose_records_no_longer_match(run_scan):
    # Given a pair in the queue
    first, second = twins()
    run_scan()
    group = open_groups().get()

    # When one record's phone is corrected and the scan runs again
    phone = second.phones.get()
    phone.number = "+7 903 555-44-33"
    phone.save()
    run = run_scan()

    # Then the group closed itself, saying why
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.CLOSED and group.resolution
    assert not open_groups().exists()
    assert run.stats["customer"]["closed"] == 1


def test_group_closes_when_records_are_merged_on_the_card(run_scan, django_capture_on_commit_callbacks):
    # Given a pair in the queue
    first, second = twins()
    run_scan()
    group = open_groups().get()

    # When a manager merges them from the card (any path through the merge engine)
    with django_capture_on_commit_callbacks(execute=True):
        records_merge(survivor=first, absorbed=[second])

    # Then the group is marked merged at once, without waiting for the next scan
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.MERGED
    assert group.resolved_at is not None


def test_group_keeps_its_other_records_when_one_is_merged_elsewhere(run_scan, django_capture_on_commit_callbacks):
    # Given a trio in the queue, and an outside record
    first, second = twins()
    third = customer_with("I.", "Petrov", phones=["+79123456789"])
    outside = customer_with("Somebody", "Else", phones=["+7 903 123-45-67"])
    run_scan()
    group = open_groups().get()

    # When one of the trio is merged into the outside record
    with django_capture_on_commit_callbacks(execute=True):
        records_merge(survivor=outside, absorbed=[third])

    # Then the group keeps the two others
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.OPEN and group.size == 2
    assert member_sets([group]) == {frozenset({first.pk, second.pk})}


def test_group_closes_when_only_one_record_is_left(run_scan, django_capture_on_commit_callbacks):
    # Given a pair in the queue, and an outside record
    first, second = twins()
    outside = customer_with("Somebody", "Else")
    run_scan()
    group = open_groups().get()

    # When one of the pair is merged into the outside record
    with django_capture_on_commit_callbacks(execute=True):
        records_merge(survivor=outside, absorbed=[second])

    # Then the group is closed: nothing left to decide
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.CLOSED


@pytest.fixture
def reviewer(manager):
    """A manager who may change customers, and so say two of them are not duplicates."""
    manager.user_permissions.add(Permission.objects.get(codename="change_customer"))
    return type(manager).objects.get(pk=manager.pk)  # a fresh instance: permissions are cached per instance


def test_dismissed_group_never_comes_back(run_scan, reviewer):
    manager = reviewer
    # Given a pair in the queue
    first, second = twins()
    run_scan()
    group = open_groups().get()

    # When a manager dismisses it and the scan runs again
    review.group_dismiss(group=group, user=manager)
    run = run_scan()

    # Then the pair is stored as not duplicates and the scan does not bring it back
    assert NotDuplicate.objects.filter(low_id=first.pk, high_id=second.pk, created_by=manager).exists()
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.DISMISSED and group.resolved_by == manager
    assert not open_groups().exists() and run.stats["customer"]["groups"] == 0


def test_group_actions_refuse_a_group_already_decided(run_scan, reviewer):
    manager = reviewer
    # Given a dismissed group
    twins()
    run_scan()
    group = open_groups().get()
    review.group_dismiss(group=group, user=manager)

    # When someone tries to merge or dismiss it again (a second tab)
    # Then it is refused with a clear reason
    with pytest.raises(review.ScanError, match="already dismissed"):
        review.group_merge(group=group, user=manager)
    with pytest.raises(review.ScanError, match="already dismissed"):
        review.group_dismiss(group=group, user=manager)


# --- Auto-merge -------------------------------------------------------------------------------------------------


@pytest.fixture
def trusted_rule():
    """An admin trusts "same phone and same email" to merge on its own."""
    return make_rule(
        "customer", "Same phone and email", [("phone", "normalized"), ("email", "normalized")], position=9,
        auto_merge=True,
    )


def test_rule_auto_merge_is_off_by_default(run_scan):
    # Given the default rules and a pair with the same phone and email
    customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])
    customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])

    # When the scan runs
    run = run_scan()

    # Then nothing is merged: the pair waits in the queue for a manager
    assert not any(rule.auto_merge for rule in Rule.objects.all())
    assert open_groups().count() == 1 and not MergeJob.objects.exists()
    assert Customer.objects.filter(is_archived=True).count() == 0
    assert run.stats["customer"]["auto_merged"] == 0


def test_scan_auto_merges_groups_of_trusted_rules_and_notifies_owners(run_scan, trusted_rule):
    # Given a pair matching the trusted rule, owned by two managers; and a pair matching by phone only
    anna, boris = factories.UserFactory(username="anna"), factories.UserFactory(username="boris")
    oldest = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"], owner=anna)
    newer = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["IVAN@example.com"], position="CEO", owner=boris)
    phone_only = twins(phone="+7 903 777-66-55")

    # When the scan runs
    run = run_scan()

    # Then the trusted pair was merged into the oldest record through the merge engine
    newer.refresh_from_db()
    oldest.refresh_from_db()
    assert newer.is_archived and newer.merged_into_id == oldest.pk
    assert oldest.position == "CEO"
    job = MergeJob.objects.get()
    assert job.status == MergeJob.Status.DONE and job.created_by is None
    assert job.survivor_id == oldest.pk and job.absorbed_ids == [newer.pk]
    assert run.stats["customer"]["auto_merged"] == 1
    # And its group is recorded as merged automatically; the phone-only pair waits for a manager
    merged = DuplicateGroup.objects.get(members__record_id=oldest.pk)
    assert merged.status == DuplicateGroup.Status.MERGED and merged.auto_merged and merged.merge_job_id == job.pk
    assert member_sets(open_groups()) == {frozenset(record.pk for record in phone_only)}
    # And both owners were told, with a link to the surviving record
    notes = Notification.objects.filter(job=job)
    assert {note.user.username for note in notes} == {"anna", "boris"}
    assert all("merged automatically" in note.message and str(oldest.pk) in note.url for note in notes)


def test_scan_auto_merge_leaves_mixed_groups_to_managers(run_scan, trusted_rule):
    # Given a trio: two match the trusted rule, the third only by phone
    first = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])
    second = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])
    third = customer_with("Ivan", "Petrov", phones=[PHONE])

    # When the scan runs
    run_scan()

    # Then only the trusted pair was merged; the third stays in the queue with the survivor
    second.refresh_from_db()
    assert second.merged_into_id == first.pk
    assert member_sets(open_groups()) == {frozenset({first.pk, third.pk})}


def test_auto_merge_can_be_undone_and_is_not_repeated(run_scan, trusted_rule, django_capture_on_commit_callbacks):
    # Given a pair the scan merged on its own
    admin = factories.UserFactory(username="admin", is_superuser=True)
    first = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])
    second = customer_with("Ivan", "Petrov", phones=[PHONE], emails=["ivan@example.com"])
    run_scan()
    job = MergeJob.objects.get()

    # When an admin undoes it from the history, and the next scan runs
    with django_capture_on_commit_callbacks(execute=True):
        merge_undo(job=job, user=admin)
    second.refresh_from_db()
    assert not second.is_archived and second.merged_into_id is None
    group = DuplicateGroup.objects.get(members__record_id=first.pk)
    assert group.status == DuplicateGroup.Status.OPEN  # back in the queue
    run = run_scan()

    # Then the scan does not merge them again: the pair stays in the queue for a manager
    second.refresh_from_db()
    assert not second.is_archived
    assert MergeJob.objects.count() == 1 and run.stats["customer"]["auto_merged"] == 0
    assert member_sets(open_groups()) == {frozenset({first.pk, second.pk})}


# --- The schedule -----------------------------------------------------------------------------------------------


def schedule_migration():
    path = next(Path(settings.BASE_DIR, "dedup", "migrations").glob("*_daily_scan_schedule.py"))
    spec = importlib.util.spec_from_file_location("daily_scan_schedule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_creates_the_daily_scan_periodic_task():
    # Given a database without the task (a flushed one), and the migration
    PeriodicTask.objects.filter(name="Daily duplicate scan").delete()
    migration = schedule_migration()

    # When the migration runs (twice: a re-run never adds a second task)
    migration.create_daily_scan(apps, None)
    migration.create_daily_scan(apps, None)

    # Then one enabled task runs the scan every day at 03:00 in the site's time zone
    task = PeriodicTask.objects.get(name="Daily duplicate scan")
    assert task.enabled and task.task == "dedup.scan_scheduled" and task.task in celery_app.tasks
    assert (task.crontab.minute, task.crontab.hour) == ("0", "3")
    assert (task.crontab.day_of_week, task.crontab.day_of_month, task.crontab.month_of_year) == ("*", "*", "*")
    assert str(task.crontab.timezone) == settings.TIME_ZONE
    assert task.interval is None


def test_migration_reverse_removes_the_task_and_its_schedule():
    # Given the task created by the migration
    migration = schedule_migration()
    migration.create_daily_scan(apps, None)
    crontab_id = PeriodicTask.objects.get(name="Daily duplicate scan").crontab_id

    # When the migration is reversed
    migration.remove_daily_scan(apps, None)

    # Then the task and its now unused schedule are gone
    assert not PeriodicTask.objects.filter(name="Daily duplicate scan").exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()


def test_scheduled_task_starts_a_scan_of_every_entity_with_rules(django_capture_on_commit_callbacks):
    # Given a pair, and the task the periodic task names
    twins()
    task = celery_app.tasks["dedup.scan_scheduled"]

    # When beat fires it (eagerly here; through a real worker in test_scan_worker.py)
    with django_capture_on_commit_callbacks(execute=True):
        run_id = task.apply().get()

    # Then a scheduled run scanned and filled the queue
    run = ScanRun.objects.get(pk=run_id)
    assert run.trigger == ScanRun.Trigger.SCHEDULE and run.status == ScanRun.Status.DONE
    assert set(run.entities) == set(Rule.objects.filter(active=True).values_list("entity", flat=True))
    assert open_groups().count() == 1


def test_merge_permission_is_needed_to_merge_a_group_from_the_queue(run_scan):
    # Given a group and a manager who may change customers but not merge
    twins()
    run_scan()
    user = factories.UserFactory(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="change_customer"))

    # When the manager tries to merge it
    # Then the merge engine refuses and the group stays open
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        review.group_merge(group=open_groups().get(), user=user)
    assert open_groups().get().merge_job_id is None


def test_group_signature_is_stable_and_order_free():
    assert review.group_signature([3, 1, 2]) == review.group_signature([1, 2, 3, 3])
    assert review.group_signature([1, 2]) != review.group_signature([1, 3])

