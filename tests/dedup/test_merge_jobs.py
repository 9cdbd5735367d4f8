"""Background merge: a job is queued with permissions checked, its task merges once, a stale screen fails it."""
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

from crm.models import Customer
from dedup import tasks
from dedup.merge import MergeError, merge_history, merge_job_create, merge_job_run, records_merge
from dedup.models import MergeJob, MergeJobRecord, Notification
from dedup.records import record_admin_url
from tests import factories
from tests.dedup.test_merge_relations import give_everything
from tests.dedup.test_merge_undo import crm_state

pytestmark = pytest.mark.django_db


def user_with(username, *codenames):
    user = factories.UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# What a merge of customers with every kind of related row needs: the merge permission and the change
# permission on customers and on each kind of row that moves (orders, deals, notes, phones...).
MERGER_CODENAMES = ("merge_records", "change_customer", "change_lead", "change_deal", "change_order", "change_phone",
                    "change_email", "change_messengerhandle", "change_note", "change_task", "change_call",
                    "change_emailmessage", "change_smsmessage", "change_chatmessage", "change_attachment")


@pytest.fixture
def merger(db):
    return user_with("merger", *MERGER_CODENAMES)


def duplicates():
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="Buyer")
    give_everything(survivor, phone="+79123456789")
    give_everything(duplicate, rows_per_kind=2, phone="89123456789", email="ivan@example.com")
    return survivor, duplicate


@pytest.mark.parametrize(
    "codenames",
    [(), ("merge_records",), ("change_customer",), ("view_customer", "merge_records")],
    ids=["nothing", "merge-only", "change-only", "view-and-merge"],
)
def test_merge_job_create_needs_change_and_merge_permissions(codenames):
    # Given a staff user missing the change permission, the merge permission or both
    user = user_with("clerk", *codenames)
    survivor, duplicate = duplicates()

    # When they ask for a merge
    with pytest.raises(PermissionDenied):
        merge_job_create(user=user, survivor=survivor, absorbed=[duplicate])

    # Then no job exists and nothing was merged
    assert not MergeJob.objects.exists()
    assert not Customer.objects.filter(is_archived=True).exists()


def test_merge_job_create_queues_after_commit_and_the_task_merges(merger, django_capture_on_commit_callbacks):
    # Given two duplicates
    survivor, duplicate = duplicates()

    # When a manager with the permissions asks for the merge (the task is sent once the job is committed)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = merge_job_create(
            user=merger, survivor=survivor, absorbed=[duplicate], expected={survivor.pk: survivor.updated_at}
        )
    assert job.status == MergeJob.Status.QUEUED and len(callbacks) == 1
    assert not Customer.objects.filter(is_archived=True).exists()
    callbacks[0]()

    # Then the job is done, the duplicate archived into the survivor, and the manager notified with a link
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE, job.error
    assert job.started_at and job.finished_at and job.snapshot["survivor"] == survivor.pk
    duplicate.refresh_from_db()
    assert duplicate.merged_into_id == survivor.pk
    assert survivor.orders.count() == 3
    notification = Notification.objects.get(user=merger)
    assert notification.level == Notification.Level.SUCCESS and notification.job == job
    assert notification.message == f"Merge finished: 1 record merged into customer #{survivor.pk} Petrov Ivan."
    assert notification.url == record_admin_url(Customer, survivor.pk) != ""


def test_merge_job_create_records_who_what_and_which_choices(merger, django_capture_on_commit_callbacks):
    # Given three duplicates and a choice of the second record's first name
    survivor, first, second = factories.CustomerFactory.create_batch(3)

    # When the merge is queued
    job = merge_job_create(
        user=merger, survivor=survivor, absorbed=[first, second], choices={"first_name": second.pk},
        expected={first.pk: first.updated_at.isoformat()},
    )  # fmt: skip

    # Then the job holds everything the worker needs, and each record's history lists it
    assert (job.entity_key, job.survivor_id, job.absorbed_ids) == ("customer", survivor.pk, [first.pk, second.pk])
    assert job.choices == {"first_name": second.pk}
    assert job.expected == {str(first.pk): first.updated_at.isoformat()}
    assert job.created_by == merger and job.celery_task_id
    assert set(job.records.values_list("record_id", "role")) == {
        (survivor.pk, MergeJobRecord.Role.SURVIVOR),
        (first.pk, MergeJobRecord.Role.ABSORBED),
        (second.pk, MergeJobRecord.Role.ABSORBED),
    }
    for record in (survivor, first, second):
        assert list(merge_history(record)) == [job]


def test_merge_job_create_refuses_a_choice_outside_the_merge_before_queueing(merger):
    # Given two duplicates and a third customer that is not part of the merge
    survivor, duplicate, stranger = factories.CustomerFactory.create_batch(3)

    # When the choices point at the stranger
    with pytest.raises(MergeError, match="not one of the merged records"):
        merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate], choices={"first_name": stranger.pk})

    # Then no job was queued
    assert not MergeJob.objects.exists()


def test_merge_job_create_refuses_a_record_merged_already(merger):
    # Given a duplicate that was merged into someone else already
    survivor, duplicate, other = factories.CustomerFactory.create_batch(3)
    records_merge(survivor=other, absorbed=[duplicate], user=merger)

    # When a manager with an old screen asks to merge it again
    with pytest.raises(MergeError, match="has already been merged into another record"):
        merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])

    # Then nothing was queued
    assert not MergeJob.objects.exists()


def test_merge_job_run_fails_on_a_stale_screen_and_leaves_every_record_intact(
    merger, django_capture_on_commit_callbacks
):
    # Given a compare screen opened on two duplicates, after which someone edited the duplicate
    survivor, duplicate = duplicates()
    seen = {survivor.pk: survivor.updated_at, duplicate.pk: duplicate.updated_at}
    duplicate.position = "Head of purchasing"
    duplicate.save()
    before = crm_state()

    # When the merge from that screen runs
    with django_capture_on_commit_callbacks(execute=True):
        job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate], expected=seen)

    # Then the job failed saying why, every CRM row is as it was, and the manager is told
    job.refresh_from_db()
    assert job.status == MergeJob.Status.FAILED
    assert f"Customer #{duplicate.pk} Petrov Ivan was changed by someone else" in job.error
    assert crm_state() == before
    notification = Notification.objects.get(user=merger)
    assert notification.level == Notification.Level.ERROR and "changed by someone else" in notification.message


def test_merge_job_run_fails_when_a_record_was_merged_meanwhile(merger, django_capture_on_commit_callbacks):
    # Given a queued merge, and one of its records merged elsewhere meanwhile (by the intake, synchronously)
    survivor, duplicate = duplicates()
    other = factories.CustomerFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = merge_job_create(user=merger, survivor=other, absorbed=[duplicate])
    records_merge(survivor=survivor, absorbed=[duplicate])

    # When the queued job runs
    callbacks[0]()

    # Then it failed because the record is already merged, and the other merge stands untouched
    queued.refresh_from_db()
    assert queued.status == MergeJob.Status.FAILED
    assert f"already been merged into #{survivor.pk}" in queued.error
    duplicate.refresh_from_db()
    assert duplicate.merged_into_id == survivor.pk
    other.refresh_from_db()
    assert not other.is_archived


@pytest.mark.parametrize("status", ["queued", "running", "undoing"])
def test_merge_job_create_refuses_a_record_already_in_a_pending_job(merger, status):
    # Given a merge job not ended yet (queued, running, or being undone)
    survivor, duplicate = duplicates()
    other = factories.CustomerFactory()
    pending = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=pending.pk).update(status=status)

    # When someone asks for a second merge with one of its records (another tab, the queue)
    with pytest.raises(MergeError, match=f"is already in merge #{pending.pk}, which has not ended yet"):
        merge_job_create(user=merger, survivor=other, absorbed=[duplicate])

    # Then no second job exists; once the first ended, the record may be merged again
    assert list(MergeJob.objects.values_list("pk", flat=True)) == [pending.pk]
    MergeJob.objects.filter(pk=pending.pk).update(status=MergeJob.Status.FAILED)
    assert merge_job_create(user=merger, survivor=other, absorbed=[duplicate]).status == MergeJob.Status.QUEUED


def test_merge_job_run_twice_for_one_job_merges_once(merger, django_capture_on_commit_callbacks):
    # Given a queued merge job
    survivor, duplicate = duplicates()
    with django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])

    # When its task is delivered twice (a retry, a redelivery)
    first = tasks.merge_job_run.apply(args=[job.pk]).get()
    state_after_first = crm_state()
    second = tasks.merge_job_run.apply(args=[job.pk]).get()

    # Then the second delivery did nothing: one merge note, one notification, the same rows
    assert first == second == MergeJob.Status.DONE
    assert crm_state() == state_after_first
    assert survivor.notes.filter(text__startswith="Merged ").count() == 1
    assert Notification.objects.filter(job=job).count() == 1


def test_merge_job_run_finishes_a_job_whose_worker_died(merger):
    # Given a job marked running by a worker that died before committing the merge
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(status=MergeJob.Status.RUNNING)

    # When the task is delivered again
    merge_job_run(job_id=job.pk)

    # Then the merge is done, once
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE
    duplicate.refresh_from_db()
    assert duplicate.merged_into_id == survivor.pk


@pytest.mark.parametrize("status", [MergeJob.Status.FAILED, MergeJob.Status.UNDONE])
def test_merge_job_run_leaves_a_finished_job_alone(merger, status):
    # Given a job that already failed or was undone
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(status=status)

    # When its task is delivered (late)
    merge_job_run(job_id=job.pk)

    # Then nothing was merged
    duplicate.refresh_from_db()
    assert not duplicate.is_archived
    assert MergeJob.objects.get(pk=job.pk).status == status


def test_merge_job_task_marks_the_job_failed_on_an_unexpected_error(merger, monkeypatch):
    # Given a queued job and a merge engine that breaks half-way (a bug, say)
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    before = crm_state()

    def broken(model):
        raise RuntimeError("boom")

    monkeypatch.setattr("dedup.merge.services.relations_for", broken)

    # When the task runs
    with pytest.raises(RuntimeError):
        tasks.merge_job_run.apply(args=[job.pk], throw=True)

    # Then the job failed with a message for the user, the records are intact, and the user is told
    job.refresh_from_db()
    assert job.status == MergeJob.Status.FAILED
    assert job.error == "An unexpected error stopped the merge; nothing was changed."
    assert crm_state() == before
    assert Notification.objects.get(job=job).level == Notification.Level.ERROR


def test_merge_history_lists_the_merges_a_record_took_part_in(merger):
    # Given a record absorbed in one merge and a survivor of another
    a, b, c = factories.CustomerFactory.create_batch(3)
    first = merge_job_create(user=merger, survivor=a, absorbed=[b])
    merge_job_run(job_id=first.pk)
    second = merge_job_create(user=merger, survivor=c, absorbed=[a])

    # When its history is read
    history = list(merge_history(a))

    # Then both merges are there, newest first; the others see only their own
    assert history == [second, first]
    assert list(merge_history(b)) == [first]


def test_records_merge_result_snapshot_is_json(merger):
    # Given a merge with every kind of row
    survivor, duplicate = duplicates()

    # When it is merged
    result = records_merge(survivor=survivor, absorbed=[duplicate], user=merger)

    # Then its snapshot can be stored in the job (JSON round trip unchanged)
    assert json.loads(json.dumps(result.snapshot)) == result.snapshot


def test_merge_job_create_refuses_moving_rows_the_user_may_not_change():
    # Given a manager who may change and merge customers (and their contact rows) but not orders,
    # and a duplicate with an order
    user = user_with("clerk", *[name for name in MERGER_CODENAMES if name != "change_order"])
    survivor, duplicate = duplicates()

    # When they ask for the merge
    with pytest.raises(PermissionDenied, match="would move orders"):
        merge_job_create(user=user, survivor=survivor, absorbed=[duplicate])

    # Then no job exists and the order stays where it was
    assert not MergeJob.objects.exists()
    assert duplicate.orders.count() == 2 and not Customer.objects.filter(is_archived=True).exists()


def test_merge_job_run_fails_when_the_permission_on_moved_rows_was_taken_meanwhile(merger):
    # Given a queued merge, then the requester's permission on orders taken away before the worker runs it
    survivor, duplicate = duplicates()
    before = crm_state()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    merger.user_permissions.remove(Permission.objects.get(codename="change_order"))

    # When the worker runs it
    job = merge_job_run(job_id=job.pk)

    # Then the job failed saying why, the requester is told, and every row is as it was
    assert job.status == MergeJob.Status.FAILED and "would move orders" in job.error
    assert Notification.objects.get(job=job).level == Notification.Level.ERROR
    assert crm_state() == before
