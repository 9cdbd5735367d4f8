"""The sweeper: end the merges and undos whose worker died, and the merges whose message was lost."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone, translation

from dedup.models import MergeJob

from .jobs import QUEUE_LOST_REASON, WORKER_LOST_REASON, _job_failed
from .undo import _undo_back_to_done

logger = logging.getLogger(__name__)

# A running merge or undo holds its job row locked for its whole transaction; one that has been running this
# long and whose row nobody holds lost its worker (the sweeper ends it). Settings may override it in seconds
# (DEDUP_JOB_STALLED_AFTER); it only has to cover the instant between marking a job running and locking it.
JOB_STALLED_AFTER = timedelta(seconds=60)
# A job still queued this long was lost on its way (a worker died between taking its message and starting it,
# on a broker that does not deliver it again): it is failed so that its records are free again. Longer than
# Redis's visibility timeout, so a message that comes back is given its chance first. Settings may override it
# in seconds (DEDUP_JOB_QUEUED_TIMEOUT).
JOB_QUEUED_TIMEOUT = timedelta(hours=1)


def _stalled_after() -> timedelta:
    seconds = getattr(settings, "DEDUP_JOB_STALLED_AFTER", None)
    return timedelta(seconds=float(seconds)) if seconds is not None else JOB_STALLED_AFTER


def merge_jobs_sweep() -> list[MergeJob]:
    """End the merges and undos whose worker died, with the notification; return the jobs ended.

    The heartbeat is the job row's lock: a merge or undo holds it for its whole transaction, which a killed
    worker's database session gives up (the transaction rolls back, the data is intact). So a job running for
    longer than the grace period whose row can be locked has no worker. PostgreSQL: `SKIP LOCKED` passes over
    the jobs still being worked on. SQLite: the sweeper's transaction takes the database's write lock, which a
    working merge holds, so getting it means no merge is at work.
    """
    limit = timezone.now() - _stalled_after()
    queued_seconds = getattr(settings, "DEDUP_JOB_QUEUED_TIMEOUT", None)
    queued_limit = timezone.now() - (
        timedelta(seconds=float(queued_seconds)) if queued_seconds is not None else JOB_QUEUED_TIMEOUT
    )
    candidates = list(
        MergeJob.objects.filter(
            models.Q(status=MergeJob.Status.RUNNING, started_at__lt=limit)
            | models.Q(status=MergeJob.Status.UNDOING, undo_requested_at__lt=limit)
            | models.Q(status=MergeJob.Status.QUEUED, created_at__lt=queued_limit)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ended = []
    for job_id in candidates:
        with transaction.atomic():
            job = (
                MergeJob.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("content_type", "created_by", "undone_by")
                .filter(pk=job_id)
                .first()
            )
            if job is None:
                continue  # locked: a worker is at it
            with translation.override(job.language or None):
                if job.status == MergeJob.Status.RUNNING and job.started_at and job.started_at < limit:
                    _job_failed(job, reason=WORKER_LOST_REASON)
                elif job.status == MergeJob.Status.QUEUED and job.created_at < queued_limit:
                    _job_failed(job, reason=QUEUE_LOST_REASON)
                elif job.status == MergeJob.Status.UNDOING and job.undo_requested_at and job.undo_requested_at < limit:
                    _undo_back_to_done(job, reason=WORKER_LOST_REASON)
                else:
                    continue
            logger.warning("Merge job %s ended by the sweeper: its worker died", job.pk)
            ended.append(job)
    return ended
