"""The background merge through a real Celery worker and the configured broker (Redis in CI, files locally)."""
import pytest
from django.contrib.auth.models import Permission

from dedup import tasks
from dedup.merge import merge_job_create
from dedup.models import MergeJob, Notification
from tests import factories
from tests.dedup.test_merge_jobs import MERGER_CODENAMES

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RESULT_TIMEOUT = 30


@pytest.fixture
def merger():
    user = factories.UserFactory(username="merger")
    user.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    return user


def duplicates():
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="Buyer")
    factories.OrderFactory(customer=duplicate)
    factories.NoteFactory(content_object=duplicate, text="Prefers email")
    factories.EmailFactory(content_object=duplicate, address="ivan@example.com")
    return survivor, duplicate


def wait_for(job: MergeJob) -> MergeJob:
    tasks.merge_job_run.AsyncResult(job.celery_task_id).get(timeout=RESULT_TIMEOUT)
    job.refresh_from_db()
    return job


def test_merge_job_runs_through_a_real_worker(celery_worker, merger):
    # Given two duplicates
    survivor, duplicate = duplicates()

    # When a manager confirms the merge and the worker picks the task from the broker
    job = wait_for(merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate]))

    # Then the worker merged: everything is on the survivor, the duplicate archived, the manager notified
    assert job.status == MergeJob.Status.DONE, job.error
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert survivor.position == "Buyer" and duplicate.merged_into_id == survivor.pk
    assert survivor.orders.count() == 1
    assert list(survivor.emails.values_list("address", flat=True)) == ["ivan@example.com"]
    assert survivor.notes.filter(text="Prefers email").exists()
    assert Notification.objects.get(user=merger).level == Notification.Level.SUCCESS


def test_merge_job_with_a_stale_screen_fails_in_the_worker(celery_worker, merger):
    # Given a compare screen opened, then the survivor edited by someone else
    survivor, duplicate = duplicates()
    seen = {survivor.pk: survivor.updated_at.isoformat(), duplicate.pk: duplicate.updated_at.isoformat()}
    survivor.position = "Director"
    survivor.save()

    # When the merge from that screen runs in the worker
    job = wait_for(merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate], expected=seen))

    # Then it failed with the reason and the duplicate is intact
    assert job.status == MergeJob.Status.FAILED
    assert "changed by someone else" in job.error
    duplicate.refresh_from_db()
    assert not duplicate.is_archived and duplicate.orders.count() == 1
    assert Notification.objects.get(user=merger).level == Notification.Level.ERROR


def test_merge_job_redelivered_to_the_worker_merges_once(celery_worker, merger):
    # Given a merge the worker finished
    survivor, duplicate = duplicates()
    job = wait_for(merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate]))

    # When the broker delivers the same job again (a retry after a lost acknowledgement)
    again = tasks.merge_job_run.apply_async(args=[job.pk]).get(timeout=RESULT_TIMEOUT)

    # Then the worker did nothing the second time
    assert again == MergeJob.Status.DONE
    assert survivor.notes.filter(text__startswith="Merged ").count() == 1
    assert Notification.objects.filter(job=job).count() == 1
