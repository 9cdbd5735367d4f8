"""The fault suite: a real worker killed mid-merge, a broker that cannot be reached at the click.

The worker runs as production runs it, `celery -A config worker` in a process of its own (its own session, so
SIGKILL ends it and any child at once), on the configured broker (files locally, Redis in CI) and the test
database. Each test asserts the final state: every job ended, the user notified, the rows as they were.
How long each killed job took to end is printed (run with -s to see it).
"""
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import OperationalError, close_old_connections, connection
from django.urls import reverse
from kombu import pools

from config.celery import app
from dedup import review
from dedup.merge import merge_job_create, merge_jobs_sweep
from dedup.models import MergeJob, Notification
from dedup.models.scan import ScanRun
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules
from tests.dedup.test_merge_jobs import MERGER_CODENAMES
from tests.dedup.test_merge_relations import give_everything
from tests.dedup.test_merge_undo import crm_state

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A worker process needs a few seconds to import Django and connect; CI machines are slow and shared.
WORKER_START_TIMEOUT = 90
# How long the fault tests let a merge sleep inside its transaction: far longer than the test needs to kill it.
SLOW_MERGE_SECONDS = 120
CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


def _database_url() -> str:
    """The test database, as the worker process must be told it."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or ""
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


class WorkerProcess:
    """`celery -A config worker` in its own session, on this test run's broker and database."""

    def __init__(self, *, merge_delay: float = 0):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "DEDUP_FAULT_TEST_MERGE_DELAY": str(merge_delay),
            "CELERY_TASK_ALWAYS_EAGER": "false",
        }
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            env["CELERY_TEST_BROKER_DIR"] = str(Path(options["data_folder_in"]).parent)
        self.log = Path(settings.MEDIA_ROOT) / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
             "--without-mingle", "--without-gossip", "-n", f"fault-{uuid.uuid4().hex[:8]}@%h"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and every process of its session: no clean shutdown, no acknowledgement."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def output(self) -> str:
        """The worker's whole log (the stored figures' refreshes that the test's own saves queued can fill it)."""
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.output()[-4000:]


@pytest.fixture
def worker_processes():
    """Start worker processes on demand; every one still alive at the end is killed (by its own id)."""
    started: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(**kwargs)
        started.append(worker)
        return worker

    app.conf.task_always_eager = False
    yield start
    app.conf.task_always_eager = True
    for worker in started:
        worker.kill()


@pytest.fixture
def merger():
    user = factories.UserFactory(username="merger")
    user.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    return user


# Rows of each kind (orders, deals, leads, notes, tasks, calls, messages, attachments) the duplicate has: the
# killed merge has moved a few hundred rows, uncommitted, when it dies.
ROWS_PER_KIND = 20


def duplicates():
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="Buyer")
    give_everything(survivor, phone="+79123456789")
    give_everything(duplicate, rows_per_kind=ROWS_PER_KIND, phone="89123456789", email="ivan@example.com")
    return survivor, duplicate


def _job(job_id: int) -> MergeJob:
    while True:
        try:
            return MergeJob.objects.get(pk=job_id)
        except OperationalError:  # SQLite: the worker holds the write lock for a moment
            close_old_connections()
            time.sleep(0.1)


def wait_for_status(job_id: int, statuses, worker: WorkerProcess, timeout: float = WORKER_START_TIMEOUT) -> MergeJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(job_id)
        if job.status in statuses:
            return job
        assert worker.process.poll() is None, f"the worker exited:\n{worker.tail()}"
        time.sleep(0.2)
    raise AssertionError(f"merge #{job_id} still {job.status} after {timeout} s:\n{worker.tail()}")


# --- A worker killed mid-merge ----------------------------------------------------------------------------------


def test_worker_killed_mid_merge_the_sweeper_ends_the_job_and_the_rows_are_intact(
    worker_processes, merger, settings, capsys
):
    # Given two duplicates with orders, notes and an email, and a worker whose merges are slow
    survivor, duplicate = duplicates()
    before = crm_state()
    worker = worker_processes(merge_delay=SLOW_MERGE_SECONDS)

    # When a manager merges them, the worker starts the merge, and is killed with SIGKILL in the middle of it
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    wait_for_status(job.pk, {MergeJob.Status.RUNNING}, worker)
    time.sleep(2)  # well inside the merge transaction: the rows moved, not committed, the worker asleep
    worker.kill()
    killed_at = time.monotonic()

    # And the sweeper runs every second (every minute in production) with a short grace period
    settings.DEDUP_JOB_STALLED_AFTER = 1
    ended = []
    while not ended and time.monotonic() - killed_at < 120:
        time.sleep(1)
        close_old_connections()
        try:
            ended = merge_jobs_sweep()
        except OperationalError:  # SQLite: the dead worker's lock is being released
            continue
    took = time.monotonic() - killed_at

    # Then the job ended, failed with the reason; the manager is notified; every row is as it was
    job.refresh_from_db()
    assert [j.pk for j in ended] == [job.pk]
    assert job.status == MergeJob.Status.FAILED and "worker running it stopped" in job.error
    notification = Notification.objects.get(user=merger, job=job)
    assert notification.level == Notification.Level.ERROR and "worker running it stopped" in notification.message
    assert crm_state() == before
    with capsys.disabled():
        print(f"\n[fault] {connection.vendor}/{settings.CELERY_BROKER_URL.split(':')[0]}: merge #{job.pk} killed "
              f"mid-merge, ended by the sweeper {took:.1f} s after the kill; rows before/after equal "
              f"({sum(len(rows) for rows in before.values())} rows)")

    # And after a restart, the same records merge normally (nothing left locked or half done)
    fresh = worker_processes()
    again = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    again = wait_for_status(again.pk, {MergeJob.Status.DONE, MergeJob.Status.FAILED}, fresh)
    assert again.status == MergeJob.Status.DONE, again.error
    assert survivor.orders.count() == 1 + ROWS_PER_KIND


def test_a_record_in_a_running_merge_cannot_be_put_in_a_second_merge(worker_processes, merger):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer: a second request waits for the running merge's transaction to end")
    # Given a merge the worker is busy with
    survivor, duplicate = duplicates()
    other = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    worker = worker_processes(merge_delay=SLOW_MERGE_SECONDS)
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    wait_for_status(job.pk, {MergeJob.Status.RUNNING}, worker)

    # When a second merge of one of its records is asked for (another tab)
    from dedup.merge import MergeError

    with pytest.raises(MergeError, match=f"already in merge #{job.pk}"):
        merge_job_create(user=merger, survivor=other, absorbed=[duplicate])

    # Then there is still one job
    worker.kill()
    assert MergeJob.objects.count() == 1


def wait_until_ready(worker: WorkerProcess, timeout: float = WORKER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in worker.output():
            return
        assert worker.process.poll() is None, f"the worker exited:\n{worker.tail()}"
        time.sleep(0.2)
    raise AssertionError(f"the worker did not start in {timeout} s:\n{worker.tail()}")


def test_worker_killed_mid_undo_the_merge_stands_and_the_user_is_told(worker_processes, merger, settings, capsys):
    # Given a finished merge and a worker whose undos are slow
    survivor, duplicate = duplicates()
    job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    from dedup.merge import merge_job_run, merge_undo_request

    merge_job_run(job_id=job.pk)  # merged here; the undo is what the worker will be killed in
    merged = crm_state()
    worker = worker_processes(merge_delay=SLOW_MERGE_SECONDS)
    wait_until_ready(worker)

    # When the manager asks for the undo, the worker starts it, and is killed with SIGKILL in the middle of it
    merge_undo_request(job=MergeJob.objects.get(pk=job.pk), user=merger)
    time.sleep(4)
    log = worker.output()
    assert "dedup.tasks.merge_undo_run" in log and not re.search(r"merge_undo_run\[[^]]+\] succeeded", log)
    worker.kill()
    killed_at = time.monotonic()
    settings.DEDUP_JOB_STALLED_AFTER = 1
    ended = []
    while not ended and time.monotonic() - killed_at < 120:
        time.sleep(1)
        close_old_connections()
        try:
            ended = merge_jobs_sweep()
        except OperationalError:
            continue
    took = time.monotonic() - killed_at

    # Then the undo ended: the merge stands (done, undoable again), the manager is told, every row as merged
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE and job.undone_by is None
    assert Notification.objects.filter(job=job, level="error", message__contains="was not undone").exists()
    assert crm_state() == merged
    with capsys.disabled():
        print(f"\n[fault] {connection.vendor}: undo of merge #{job.pk} killed mid-way, ended by the sweeper "
              f"{took:.1f} s after the kill; rows equal to the merged state")


# --- The broker cannot be reached at the click -------------------------------------------------------------------


@pytest.fixture
def unreachable_broker(monkeypatch):
    """Point the app at a broker on a closed port (the producer pools are rebuilt for it, and after)."""
    saved = app.conf.broker_url, app.conf.get("broker_write_url"), app.conf.broker_transport_options
    # Celery reads the environment before its own settings, and a write URL before the broker URL.
    monkeypatch.setenv("CELERY_BROKER_URL", CLOSED_PORT_BROKER)
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", CLOSED_PORT_BROKER)

    def reset_pools():
        # Every cached connection and producer goes: kombu's global pools, the app's and its amqp's.
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = app.conf.broker_write_url = CLOSED_PORT_BROKER
    app.conf.broker_transport_options = {"socket_connect_timeout": 1}
    app.conf.task_always_eager = False
    reset_pools()
    # Build the producer pool now, on the closed port, and check it: the sends below must go there.
    with app.producer_pool.acquire(block=True) as producer:
        assert producer.connection.port == 1 and producer.connection.hostname == "127.0.0.1"
    yield
    app.conf.broker_url, app.conf.broker_write_url, app.conf.broker_transport_options = saved
    app.conf.task_always_eager = True
    reset_pools()


def test_broker_unreachable_merge_fails_at_once_with_the_notification(
    unreachable_broker, merger, capsys, django_capture_on_commit_callbacks
):
    # Given two duplicates and a broker nobody listens for
    survivor, duplicate = duplicates()
    before = crm_state()

    # When a manager asks for the merge (its message is sent once the job is committed)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        job = merge_job_create(user=merger, survivor=survivor, absorbed=[duplicate])
    took = time.monotonic() - started

    # Then the answer came within seconds; the job failed at once, saying why; the manager is notified
    job.refresh_from_db()
    assert took < 5, f"the request hung {took:.1f} s on the broker"
    assert job.status == MergeJob.Status.FAILED and "could not be reached" in job.error
    assert Notification.objects.get(user=merger, job=job).level == Notification.Level.ERROR
    assert crm_state() == before
    with capsys.disabled():
        print(f"\n[fault] broker on a closed port: merge #{job.pk} failed in {took:.2f} s, rows before/after equal")


@pytest.fixture
def a_customer_and_rules(django_capture_on_commit_callbacks):
    """Default rules and a customer, made while the broker is up (a rule change sends a task of its own)."""
    with django_capture_on_commit_callbacks(execute=True):
        ensure_default_rules()
        customer_with("Ivan", "Petrov", phones=["+79123456789"])


def test_broker_unreachable_run_scan_now_fails_at_once_and_blocks_no_later_scan(
    a_customer_and_rules, unreachable_broker, admin_client, django_capture_on_commit_callbacks
):
    # Given duplicate rules and a broker nobody listens for

    # When an admin presses "Run scan now"
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:dedup_scanrun_run_now"))
    took = time.monotonic() - started

    # Then the answer came within seconds, the run failed saying why (the admin is notified), and the next
    # scan is not refused as "already running"
    assert response.status_code == 302 and took < 5
    run = ScanRun.objects.get()
    assert run.status == ScanRun.Status.FAILED and "could not be reached" in run.failure_reason
    assert Notification.objects.filter(level="error", message__contains="could not be reached").exists()
    assert review.scan_start(dispatch=False).pk != run.pk
