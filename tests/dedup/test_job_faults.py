"""Jobs that always end: a message the broker refuses fails its job at once; the sweeper ends dead workers' jobs.

These run in-process (eager tasks, the broker's refusal simulated); tests/dedup/test_faults_worker.py does the
same with a real worker killed with SIGKILL and a broker on a closed port.
"""
import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone, translation
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError as BrokerDown

from dedup import review
from dedup.dispatch import current_app
from dedup.merge import MERGE_TASK, UNDO_TASK, merge_job_create, merge_job_run, merge_jobs_sweep, merge_undo_request
from dedup.models import MergeJob, Notification
from dedup.models.scan import ScanChunk, ScanRun
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules
from tests.dedup.test_merge_jobs import MERGER_CODENAMES
from tests.dedup.test_merge_undo import crm_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def merger(db):
    user = factories.UserFactory(username="merger")
    user.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    return user


@pytest.fixture
def broker_down(monkeypatch):
    """Every task sent fails as kombu fails when the broker cannot be reached."""

    def refuse(*args, **kwargs):
        raise BrokerDown("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    for name in (MERGE_TASK, UNDO_TASK, review.PLAN_TASK, "dedup.scan_chunk"):
        monkeypatch.setattr(current_app.tasks[name], "apply_async", refuse)


def duplicates():
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="Buyer")
    factories.OrderFactory(customer=duplicate)
    factories.NoteFactory(content_object=duplicate, text="Prefers email")
    return survivor, duplicate


# --- Item 1: the broker is down at the click ---------------------------------------------------------------------


def test_merge_job_whose_message_cannot_be_sent_fails_at_once(merger, broker_down, django_capture_on_commit_callbacks):
    # Given two duplicates and a broker that cannot be reached
    survivor, duplicate = duplicates()
    before = crm_state()

    # When a manager (reading Russian) asks for the merge
    with translation.override("ru"), django_capture_on_commit_callbacks(execute=True):
        job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])

    # Then the job failed at once with the reason in the manager's language, they are notified, nothing changed
    job.refresh_from_db()
    assert job.status == MergeJob.Status.FAILED and job.finished_at is not None
    assert "очередь задач недоступна" in job.error
    notification = Notification.objects.get(user=merger, job=job)
    assert notification.level == Notification.Level.ERROR and "очередь задач недоступна" in notification.message
    assert crm_state() == before
    # and its records are free for a merge once the broker is back
    assert merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate]).status == MergeJob.Status.QUEUED


def test_scan_whose_message_cannot_be_sent_fails_at_once_and_blocks_no_later_scan(
    admin_client, broker_down, django_capture_on_commit_callbacks
):
    # Given duplicate rules and a broker that cannot be reached
    ensure_default_rules()
    customer_with("Ivan", "Petrov", phones=["+79123456789"])

    # When an admin presses "Run scan now"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:dedup_scanrun_run_now"), follow=True)

    # Then the run failed at once saying why, and the admin is told by a notification
    run = ScanRun.objects.get()
    assert response.status_code == 200
    assert run.status == ScanRun.Status.FAILED and "could not be reached" in run.failure_reason
    assert Notification.objects.filter(user=run.requested_by, level="error", message__contains="could not be reached")
    # and the next scan is not refused as "already running"
    later = review.scan_start(dispatch=False)
    assert later.pk != run.pk


def test_broker_publishing_is_configured_to_give_up_within_seconds():
    # A click must not hang ~20 s on a broker that is down
    app = current_app
    assert app.conf.broker_connection_timeout <= 3
    assert app.conf.task_publish_retry_policy["max_retries"] <= 2
    assert app.conf.result_backend_transport_options["retry_policy"]["max_retries"] <= 2


# --- Item 2: the sweeper ends jobs whose worker died ---------------------------------------------------------------


def test_sweeper_fails_a_merge_whose_worker_died_and_notifies(merger):
    # Given a merge marked running five minutes ago whose worker died (nobody holds its row)
    survivor, duplicate = duplicates()
    before = crm_state()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(
        status=MergeJob.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=5)
    )

    # When the sweeper runs
    ended = merge_jobs_sweep()

    # Then the job failed saying why, the manager is notified, and the records are as they were
    job.refresh_from_db()
    assert [j.pk for j in ended] == [job.pk]
    assert job.status == MergeJob.Status.FAILED and "worker running it stopped" in job.error
    assert Notification.objects.get(user=merger, job=job).level == Notification.Level.ERROR
    assert crm_state() == before
    # and a redelivered message later does nothing
    assert merge_job_run(job_id=job.pk).status == MergeJob.Status.FAILED
    assert crm_state() == before


def test_sweeper_fails_a_merge_whose_message_was_lost_after_an_hour_so_its_records_are_free(merger):
    # Given a merge queued two hours ago that no worker ever started, and one queued a minute ago
    survivor, duplicate = duplicates()
    lost = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=2))
    other_survivor, other_duplicate = duplicates()
    recent = merge_job_create(user=merger, survivor=other_survivor, absorbed=[other_duplicate])

    # When the sweeper runs
    merge_jobs_sweep()

    # Then the lost one failed with the reason and a notification; the recent one waits; the records are free
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == MergeJob.Status.FAILED and "within an hour" in lost.error
    assert Notification.objects.filter(job=lost, level="error").exists()
    assert recent.status == MergeJob.Status.QUEUED
    assert merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate]).status == MergeJob.Status.QUEUED


def test_sweeper_leaves_a_merge_that_just_started(merger):
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(status=MergeJob.Status.RUNNING, started_at=timezone.now())

    assert merge_jobs_sweep() == []
    job.refresh_from_db()
    assert job.status == MergeJob.Status.RUNNING


def test_sweeper_ends_an_undo_whose_worker_died_and_the_merge_stands(merger, django_capture_on_commit_callbacks):
    # Given a finished merge whose undo was asked for, and whose undo worker died
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    merge_job_run(job_id=job.pk)
    merge_undo_request(job=job, user=merger)  # its message is never run (not captured)
    MergeJob.objects.filter(pk=job.pk).update(undo_requested_at=timezone.now() - timedelta(minutes=5))

    # When the sweeper runs
    merge_jobs_sweep()

    # Then the merge is done again (undoable later), and the user is told the undo did not happen
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE and job.undone_by is None
    assert Notification.objects.filter(job=job, level="error", message__contains="was not undone").exists()
    duplicate.refresh_from_db()
    assert duplicate.is_archived


def test_sweeper_sends_a_dead_workers_scan_chunk_again_then_fails_it(settings, django_capture_on_commit_callbacks):
    # Given a chunked scan whose first chunk's worker died twenty minutes ago
    ensure_default_rules()
    settings.DEDUP_SCAN_CHUNK_RECORDS = 2
    for index in range(3):
        customer_with("Ivan", f"Petrov{index}", phones=[f"+7912{index:03d}4567"])
        customer_with("Ivan", f"Petrov{index}", phones=[f"8912{index:03d}4567"])
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunk = run.chunks.order_by("index").first()
    long_ago = timezone.now() - timedelta(minutes=20)
    ScanChunk.objects.filter(pk=chunk.pk).update(status=ScanChunk.Status.RUNNING, attempts=1, started_at=long_ago)

    # When the sweeper runs (the chunk's task runs eagerly once sent)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = review.scan_sweep()

    # Then the chunk was sent again and scanned
    assert outcome == {"resent": 1, "failed": 0}
    chunk.refresh_from_db()
    assert chunk.status == ScanChunk.Status.DONE and chunk.attempts == 2

    # And in the next scan, a chunk that died on its last attempt fails its run, which blocks no later scan
    run.refresh_from_db()
    assert run.status == ScanRun.Status.DONE
    run = review.scan_start(entities=["customer"], dispatch=False)
    last = run.chunks.order_by("index").first()
    ScanChunk.objects.filter(pk=last.pk).update(status=ScanChunk.Status.RUNNING, attempts=3, started_at=long_ago)
    assert review.scan_sweep() == {"resent": 0, "failed": 1}
    run.refresh_from_db()
    assert run.status == ScanRun.Status.FAILED and "worker stopped" in run.failure_reason
    assert review.scan_start(dispatch=False).status in (ScanRun.Status.RUNNING, ScanRun.Status.DONE)


def sweeper_migration():
    path = next(Path(settings.BASE_DIR, "dedup", "migrations").glob("*_jobs_sweep_schedule.py"))
    spec = importlib.util.spec_from_file_location("jobs_sweep_schedule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_creates_the_sweeper_periodic_task_every_minute():
    from django.apps import apps

    sweeper_migration().create_sweeper(apps, None)
    sweeper_migration().create_sweeper(apps, None)  # twice: still one task
    task = PeriodicTask.objects.get(name="Sweep stalled jobs")
    assert task.task == "dedup.jobs_sweep" and task.enabled
    assert (task.interval.every, task.interval.period) == (1, "minutes")
    assert current_app.tasks["dedup.jobs_sweep"] is not None


def test_sweeper_task_reports_what_it_ended(merger):
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now() - timedelta(minutes=5))

    result = current_app.tasks["dedup.jobs_sweep"].apply().get()

    assert result == {"merges_ended": 1, "resent": 0, "failed": 0, "figures_resent": []}
