"""Celery tasks of the automatic scan: the scheduled start, the plan, one chunk, the join (they call scan_runs)."""
from __future__ import annotations

import logging

from celery import shared_task

from dedup import scan_runs
from dedup.models.scan import ScanRun

logger = logging.getLogger(__name__)

# A chunk is idempotent (its result is replaced, never added to), so any failure is worth another try: a
# database restart, a deadlock victim, a worker killed mid-chunk (redelivered thanks to acks_late).
SCAN_CHUNK_MAX_RETRIES = 3
SCAN_PLAN_MAX_RETRIES = 3
SCAN_JOIN_MAX_RETRIES = 3


@shared_task(name="dedup.scan_scheduled")
def scan_scheduled() -> int | None:
    """The periodic task "Daily duplicate scan": scan every entity with active rules, unless a scan runs."""
    run = scan_runs.scan_request(trigger=ScanRun.Trigger.SCHEDULE)
    return run.pk if run is not None else None


@shared_task(
    bind=True,
    name="dedup.scan_plan",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=SCAN_PLAN_MAX_RETRIES,
)
def scan_plan(self, run_id: int) -> int:
    """Plan a run's chunks (key ranges) and send one task per chunk; return how many were sent."""
    try:
        chunk_ids = scan_runs.scan_plan(run_id=run_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            scan_runs.scan_run_fail(run_id=run_id, reason=str(error) or error.__class__.__name__)
            raise
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    for chunk_id in chunk_ids:
        scan_chunk.delay(chunk_id)
    return len(chunk_ids)


@shared_task(
    bind=True,
    name="dedup.scan_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=SCAN_CHUNK_MAX_RETRIES,
)
def scan_chunk(self, chunk_id: int) -> bool:
    """Scan one chunk; the last chunk of a run to finish sends the join."""
    try:
        run_id, join_due = scan_runs.scan_chunk_process(chunk_id=chunk_id)
    except Exception as error:
        reason = str(error) or error.__class__.__name__
        if self.request.retries >= self.max_retries:
            scan_runs.scan_chunk_fail(chunk_id=chunk_id, reason=reason)
            raise
        scan_runs.scan_chunk_retrying(chunk_id=chunk_id, reason=reason)
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    if join_due and run_id is not None:
        scan_join.delay(run_id)
    return join_due


@shared_task(
    bind=True,
    name="dedup.scan_join",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=SCAN_JOIN_MAX_RETRIES,
)
def scan_join(self, run_id: int) -> str | None:
    """Join a run's chunks into the review queue, auto-merge, finish the run."""
    try:
        run = scan_runs.scan_join(run_id=run_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            scan_runs.scan_run_fail(run_id=run_id, reason=str(error) or error.__class__.__name__)
            raise
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    return run.status if run is not None else None
