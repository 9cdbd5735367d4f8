"""Celery tasks of duplicate control: they take ids, call a service and own the retries.

Merge jobs (dedup.merge), the match-key index backfill (dedup.engine.index) and the automatic scan's plan,
chunks and join (dedup.review). The registered names are fixed: the daily scan's periodic task and queued
messages refer to them.
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext_lazy as _

from dedup import registry, review
from dedup.engine import counts, index
from dedup.engine.counts import REBUILD_TASK as COUNTS_REBUILD_TASK
from dedup.engine.figures_messages import REFRESH_TASK as COUNTS_REFRESH_TASK
from dedup.engine.figures_messages import refresh_resend_lost
from dedup.engine.index import BACKFILL_TASK
from dedup.engine.index.builds import BUILD_TASK
from dedup.engine.scoring.decisions import FOLD_TASK, scoring_decision_fold
from dedup.merge import MERGE_TASK, UNDO_TASK, merge_job_fail, merge_jobs_sweep, merge_undo_fail
from dedup.merge import merge_job_run as merge_job_run_service
from dedup.merge import merge_undo_run as merge_undo_run_service
from dedup.models.scan import ScanRun
from dedup.review import PLAN_TASK, SCHEDULED_SCAN_TASK

# The registered name of the sweeper; its periodic task (migration 0010) refers to it.
SWEEP_TASK = "dedup.jobs_sweep"

logger = logging.getLogger(__name__)

# A database restart, a lock timeout or a deadlock victim is worth trying again; the job is untouched by a
# failed attempt (its transaction rolled back), so a retry is safe.
MERGE_RETRY_ERRORS = (OperationalError, InterfaceError)
MERGE_MAX_RETRIES = 5


@shared_task(
    bind=True, name=MERGE_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=MERGE_MAX_RETRIES
)
def merge_job_run(self, job_id: int) -> str | None:
    """Run a merge job; delivering it twice (a retry, a worker that died) still merges once."""
    try:
        job = merge_job_run_service(job_id=job_id)
    except MERGE_RETRY_ERRORS as error:
        if self.request.retries >= self.max_retries:
            merge_job_fail(job_id=job_id, reason=_("The database was not available; try again later."))
            raise
        raise self.retry(exc=error, countdown=2 ** self.request.retries) from error
    except Exception:
        merge_job_fail(job_id=job_id, reason=_("An unexpected error stopped the merge; nothing was changed."))
        raise
    return job.status if job is not None else None


@shared_task(bind=True, name=UNDO_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=MERGE_MAX_RETRIES)
def merge_undo_run(self, job_id: int) -> str | None:
    """Undo a merge in the background; delivering it twice still undoes once."""
    try:
        job = merge_undo_run_service(job_id=job_id)
    except MERGE_RETRY_ERRORS as error:
        if self.request.retries >= self.max_retries:
            merge_undo_fail(job_id=job_id, reason=_("The database was not available; try again later."))
            raise
        raise self.retry(exc=error, countdown=2 ** self.request.retries) from error
    except Exception:
        merge_undo_fail(job_id=job_id, reason=_("An unexpected error stopped the undo; nothing was changed."))
        raise
    return job.status if job is not None else None


@shared_task(name=SWEEP_TASK)
def jobs_sweep() -> dict:
    """The periodic task "Sweep stalled jobs" (every minute): end merges, undos and scan chunks whose worker died;
    send the stored figures' refresh again where its message was lost."""
    ended = merge_jobs_sweep()
    return {"merges_ended": len(ended), **review.scan_sweep(), "figures_resent": refresh_resend_lost()}


# Scored matching

@shared_task(name=FOLD_TASK, acks_late=True, autoretry_for=(OperationalError, InterfaceError), max_retries=5,
             retry_backoff=True)
def scoring_decisions_fold(entity_key: str, pairs: list, is_match: bool) -> bool:
    """Fold a manager's decision (pairs of record values) into the entity's learned model."""
    return scoring_decision_fold(entity=entity_key, pairs=pairs, is_match=is_match)


# Match-key index

# A backfill is idempotent (it replaces the kinds it writes), so a retry after a lost connection is safe.
BACKFILL_MAX_RETRIES = 5
# The index's and the figures' tasks are idempotent: acknowledged only when done (a killed worker's task is
# delivered again) and retried with backoff after a lost database connection.
REDELIVERED_AND_RETRIED = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=BACKFILL_MAX_RETRIES,
)


@shared_task(name=BACKFILL_TASK, **REDELIVERED_AND_RETRIED)
def index_backfill(entity_key: str, kinds: list[str]) -> int:
    """Write the given kinds of keys for every record of the entity; return the rows written."""
    spec = registry.get(entity_key)
    wanted = set(kinds) & index.indexed_kinds(spec)  # a rule removed meanwhile needs them no more
    return index.backfill(spec, wanted) if wanted else 0


@shared_task(name=BUILD_TASK, **REDELIVERED_AND_RETRIED)
def index_build(build_id: int) -> int:
    """Run a queued rebuild of index keys (index.builds), storing its progress; return the records done."""
    build = index.build_run(build_id=build_id)
    return build.done if build is not None else 0


@shared_task(
    name=COUNTS_REFRESH_TASK,
    ignore_result=True,  # nobody waits for it; no result stored, no subscription to it when it is sent
    **REDELIVERED_AND_RETRIED,
)
def duplicate_counts_refresh(entity_key: str, max_batches: int | None = None, queue: str | None = None) -> int:
    """Store the duplicates of the records waiting for their figures afresh (and of their partners and
    co-holders); re-finding is idempotent, so a retry or a second delivery is safe. Return the records refreshed."""
    return counts.counts_refresh_waiting(entity=entity_key, max_batches=max_batches, queue=queue)


@shared_task(name=COUNTS_REBUILD_TASK, **REDELIVERED_AND_RETRIED)
def duplicate_counts_rebuild(entity_key: str) -> int:
    """Store every record's duplicates afresh after a rule of the entity changed; return the pairs stored."""
    return counts.counts_rebuild(entity=entity_key)


# Automatic scan

# A chunk is idempotent (its result is replaced, never added to), so any failure is worth another try: a
# database restart, a deadlock victim, a worker killed mid-chunk (redelivered thanks to acks_late).
SCAN_CHUNK_MAX_RETRIES = 3
SCAN_PLAN_MAX_RETRIES = 3
SCAN_JOIN_MAX_RETRIES = 3


@shared_task(name=SCHEDULED_SCAN_TASK)
def scan_scheduled() -> int | None:
    """The periodic task "Daily duplicate scan": scan every entity with active rules, unless a scan runs."""
    run = review.scan_request(trigger=ScanRun.Trigger.SCHEDULE)
    return run.pk if run is not None else None


@shared_task(
    bind=True,
    name=PLAN_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=SCAN_PLAN_MAX_RETRIES,
)
def scan_plan(self, run_id: int) -> int:
    """Plan a run's chunks (key ranges) and send one task per chunk; return how many were sent."""
    try:
        chunk_ids = review.scan_plan(run_id=run_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            review.scan_run_fail(run_id=run_id, reason=error)
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
        run_id, join_due = review.scan_chunk_process(chunk_id=chunk_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            review.scan_chunk_fail(chunk_id=chunk_id, reason=error)
            raise
        review.scan_chunk_retrying(chunk_id=chunk_id, reason=error)
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
        run = review.scan_join(run_id=run_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            review.scan_run_fail(run_id=run_id, reason=error)
            raise
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    return run.status if run is not None else None
