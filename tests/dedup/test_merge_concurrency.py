"""Overlapping merges at the same moment: rows are locked in one order, so one wins and the other fails cleanly.

These need real row locks (SELECT ... FOR UPDATE): PostgreSQL, as in CI. SQLite has no row locks and its test
database is an in-memory shared cache that threads cannot write concurrently, so they are skipped there.
"""
import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, transaction

from crm.models import Customer
from dedup.merge import MergeError, merge_job_run, records_merge
from dedup.models import MergeJob, Notification
from tests import factories
from tests.dedup.test_merge_jobs import MERGER_CODENAMES

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="needs row locks (SELECT ... FOR UPDATE) and concurrent writers: run on PostgreSQL "
        "(DATABASE_URL=postgres://...), as CI does",
    ),
]

# Long enough for a blocked thread to show it is blocked, short enough to keep the suite quick.
BLOCKED_FOR = 0.5
JOIN_TIMEOUT = 30


def in_thread(target, outcomes, name):
    """Run target in a thread with its own connection; store its result or exception under name."""

    def run():
        try:
            outcomes[name] = target()
        except Exception as error:  # the outcome is what the test checks
            outcomes[name] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_records_merge_waits_for_an_overlapping_merge_then_fails_cleanly(manager):
    # Given customer B wanted by two merges: into A, and into C
    a, b, c = factories.CustomerFactory.create_batch(3)
    factories.NoteFactory(content_object=b, text="B's note")
    first_locked = threading.Event()
    release_first = threading.Event()
    outcomes = {}

    def first_merge():
        with transaction.atomic():
            records_merge(survivor=a, absorbed=[b], user=manager)
            first_locked.set()
            release_first.wait(JOIN_TIMEOUT)  # hold the locks while the second merge starts
        return "merged"

    def second_merge():
        first_locked.wait(JOIN_TIMEOUT)
        records_merge(survivor=c, absorbed=[b], user=manager)
        return "merged"

    # When both run, the second starting while the first still holds its locks
    first = in_thread(first_merge, outcomes, "first")
    second = in_thread(second_merge, outcomes, "second")
    assert first_locked.wait(JOIN_TIMEOUT)
    time.sleep(BLOCKED_FOR)
    still_waiting = second.is_alive()
    release_first.set()
    first.join(JOIN_TIMEOUT)
    second.join(JOIN_TIMEOUT)

    # Then the second waited for the first, then refused because B is merged already; B's rows went to A only
    assert still_waiting
    assert outcomes["first"] == "merged"
    assert isinstance(outcomes["second"], MergeError), outcomes["second"]
    assert f"already been merged into #{a.pk}" in str(outcomes["second"])
    b.refresh_from_db()
    c.refresh_from_db()
    assert b.merged_into_id == a.pk and not c.is_archived
    assert list(a.notes.filter(text="B's note")) and not c.notes.exists()


@pytest.mark.parametrize("round_", range(3))
def test_records_merge_in_opposite_directions_never_deadlocks(manager, round_):
    # Given two customers that two managers merge at the same moment, each keeping a different one
    x, y = factories.CustomerFactory.create_batch(2)
    start = threading.Barrier(2)
    outcomes = {}

    def merge(survivor, absorbed):
        def run():
            start.wait(JOIN_TIMEOUT)
            records_merge(survivor=survivor, absorbed=[absorbed], user=manager)
            return "merged"

        return run

    # When both merges run at once
    threads = [in_thread(merge(x, y), outcomes, "x"), in_thread(merge(y, x), outcomes, "y")]
    for thread in threads:
        thread.join(JOIN_TIMEOUT)

    # Then exactly one merged and the other failed with a clear reason (no deadlock, no double absorb)
    results = sorted(outcomes.values(), key=lambda outcome: outcome == "merged")
    assert isinstance(results[0], MergeError), results[0]
    assert results[1] == "merged"
    assert Customer.objects.filter(pk__in=[x.pk, y.pk], is_archived=True).count() == 1


def test_merge_job_run_delivered_twice_at_once_merges_once(manager):
    # Given a queued job whose task two workers receive at the same moment, asked for by a manager who may
    # change the rows it moves (the worker checks that again)
    manager.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    survivor, duplicate = factories.CustomerFactory.create_batch(2)
    factories.NoteFactory(content_object=duplicate)
    # Made by hand rather than with merge_job_create, whose task would run (eagerly) on commit.
    job = MergeJob.objects.create(
        entity_key="customer",
        content_type=ContentType.objects.get_for_model(Customer),
        survivor_id=survivor.pk,
        absorbed_ids=[duplicate.pk],
        created_by=manager,
    )
    start = threading.Barrier(2)
    outcomes = {}

    def deliver():
        start.wait(JOIN_TIMEOUT)
        return merge_job_run(job_id=job.pk).status

    # When both deliveries run
    threads = [in_thread(deliver, outcomes, "first"), in_thread(deliver, outcomes, "second")]
    for thread in threads:
        thread.join(JOIN_TIMEOUT)

    # Then the merge happened once: one merge note, one notification, the job done
    assert outcomes == {"first": MergeJob.Status.DONE, "second": MergeJob.Status.DONE}
    assert survivor.notes.filter(text__startswith="Merged ").count() == 1
    assert Notification.objects.filter(job=job).count() == 1
