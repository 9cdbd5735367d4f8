"""The automatic scan through a real Celery worker and the configured broker (Redis in CI, files locally)."""
import json
import time

import pytest
from django.apps import apps
from django.db import OperationalError, close_old_connections
from django_celery_beat.models import PeriodicTask

from config.celery import app
from dedup import review
from dedup import tasks as tasks_scan
from dedup.models import DuplicateGroup, ScanChunk, ScanRun
from tests.dedup.engine_helpers import customer_with, ensure_default_rules
from tests.dedup.test_scan_runs import schedule_migration

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RESULT_TIMEOUT = 60


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()  # a transactional test flushes what the migrations wrote


def pairs(count: int) -> list[set[int]]:
    found = []
    for index in range(count):
        phone = f"+7 912 {index:03d}-45-67"
        first = customer_with("Ivan", f"Petrov{index}", phones=[phone])
        second = customer_with("Ivan", f"Petrov{index}", phones=[phone.replace("+7", "8")])
        found.append({first.pk, second.pk})
    return found


def wait_until_finished(run_id: int) -> ScanRun:
    """Poll the run until the workers finished it (chunks and join are tasks of their own)."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            run = ScanRun.objects.get(pk=run_id)
            if run.status != ScanRun.Status.RUNNING:
                return run
        except OperationalError:  # SQLite: the worker holds the write lock for a moment
            close_old_connections()
        time.sleep(0.2)
    raise AssertionError(f"scan #{run_id} did not finish in {RESULT_TIMEOUT} s")


def open_member_sets() -> list[set[int]]:
    return [
        set(group.members.values_list("record_id", flat=True))
        for group in DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN)
    ]


def test_periodic_task_runs_the_chunked_scan_through_a_real_worker(celery_worker, settings):
    # Given twelve pairs of duplicate customers, a base split into several chunks, and the daily periodic task
    settings.DEDUP_SCAN_CHUNK_RECORDS = 8
    expected = pairs(12)
    schedule_migration().create_daily_scan(apps, None)  # there already, unless a test before flushed it
    periodic = PeriodicTask.objects.get(name="Daily duplicate scan")

    # When beat fires it: the task is sent by its name through the broker, as beat sends it
    result = app.send_task(periodic.task, args=json.loads(periodic.args), kwargs=json.loads(periodic.kwargs))
    run_id = result.get(timeout=RESULT_TIMEOUT)
    run = wait_until_finished(run_id)

    # Then the worker scanned every chunk, joined them, and filled the run's figures and the queue
    assert run.status == ScanRun.Status.DONE, run.failure_reason
    assert run.trigger == ScanRun.Trigger.SCHEDULE
    chunks = ScanChunk.objects.filter(run=run, entity="customer")
    assert chunks.count() > 1 and not chunks.exclude(status=ScanChunk.Status.DONE).exists()
    assert run.stats["customer"]["records"] == 24
    assert run.stats["customer"]["groups"] == 12 and run.stats["customer"]["new"] == 12
    assert sorted(map(sorted, open_member_sets())) == sorted(map(sorted, expected))


def test_scan_started_while_one_runs_is_refused_by_the_worker(celery_worker):
    # Given a scan in progress
    pairs(2)
    running = review.scan_start(dispatch=False)

    # When beat fires the daily task meanwhile
    refused = tasks_scan.scan_scheduled.delay().get(timeout=RESULT_TIMEOUT)

    # Then the worker did not start a second scan
    assert refused is None
    assert list(ScanRun.objects.values_list("pk", flat=True)) == [running.pk]


def test_chunk_delivered_again_after_a_crash_does_not_duplicate_groups(celery_worker, settings):
    # Given a chunked scan whose first chunk's worker died mid-way (left running, attempted once)
    settings.DEDUP_SCAN_CHUNK_RECORDS = 8
    expected = pairs(10)
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunk_ids = list(run.chunks.order_by("index").values_list("pk", flat=True))
    ScanChunk.objects.filter(pk=chunk_ids[0]).update(status=ScanChunk.Status.RUNNING, attempts=1)

    # When the broker delivers every chunk, the crashed one twice (the redelivery and the original)
    results = [tasks_scan.scan_chunk.delay(chunk_id) for chunk_id in [chunk_ids[0], *chunk_ids, chunk_ids[0]]]
    for result in results:
        result.get(timeout=RESULT_TIMEOUT)
    run = wait_until_finished(run.pk)

    # Then the run finished and every group is in the queue exactly once
    assert run.status == ScanRun.Status.DONE, run.failure_reason
    assert ScanChunk.objects.get(pk=chunk_ids[0]).attempts == 2
    assert sorted(map(sorted, open_member_sets())) == sorted(map(sorted, expected))
    assert DuplicateGroup.objects.count() == len(expected)
