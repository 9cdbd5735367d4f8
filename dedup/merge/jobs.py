"""Background merges: queue a merge as a job for the workers, run it exactly once, fail it with a stored reason,
and tell the requester (a notification in their language)."""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import partial

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from dedup import audit, messages, registry
from dedup.dispatch import task_send
from dedup.engine.scoring.decisions import decision_values, scoring_decision_send
from dedup.messages import Message
from dedup.models import MergeJob, MergeJobRecord, Notification
from dedup.notifications import notification_send
from dedup.records import record_admin_url

from . import fields as merge_fields
from .checks import (
    _merge_input,
    _mergeable_model,
    _refuse_missing,
    merge_permission_check,
    related_permission_check,
)
from .errors import MergeError
from .selectors import lock_records
from .services import records_merge

logger = logging.getLogger(__name__)

# The registered names of the merge and undo jobs' Celery tasks (dedup/tasks.py); queued messages refer to them.
MERGE_TASK = "dedup.tasks.merge_job_run"
UNDO_TASK = "dedup.tasks.merge_undo_run"

# Jobs whose records may not be put in another job until they end.
PENDING_STATUSES = (MergeJob.Status.QUEUED, MergeJob.Status.RUNNING, MergeJob.Status.UNDOING)

# Stored reasons (as message ids, shown in the reader's language).
NOT_SENT_REASON = gettext_lazy(
    "The background workers could not be reached (the task queue is down); nothing was changed. "
    "Try again in a few minutes."
)
QUEUE_LOST_REASON = gettext_lazy(
    "No worker started it within an hour (its message was lost); nothing was changed. Try again."
)
WORKER_LOST_REASON = gettext_lazy(
    "The worker running it stopped before it finished (it was restarted or ran out of memory); "
    "nothing was changed. Try again."
)


@transaction.atomic
def merge_job_create(
    *,
    user,
    survivor: models.Model,
    absorbed: Sequence[models.Model],
    choices: Mapping[str, int] | None = None,
    expected: Mapping | None = None,
    left_out: Sequence[int] = (),
) -> MergeJob:
    """Queue a merge to run in the background; the task is sent once the job is committed.

    ``left_out``: records the manager unticked; the merge remembers them as not duplicates when it runs.
    """
    model = _mergeable_model(type(survivor))
    spec = registry.for_model(model)
    if spec is None:
        raise MergeError.of(
            gettext_lazy("%(records)s do not take part in duplicate control."), records=model._meta.verbose_name_plural
        )
    merge_permission_check(user=user, model=model)
    absorbed_pks, choices, expected = _merge_input(model, survivor, absorbed, choices, expected)
    related_permission_check(user=user, model=model, absorbed_pks=absorbed_pks)
    pks = [survivor.pk, *absorbed_pks]
    # Refuse at once what the worker would refuse anyway (the worker checks again, under lock).
    archived = model._base_manager.filter(pk__in=pks, **{merge_fields.ARCHIVED_FIELD: True}).first()
    if archived is not None:
        raise MergeError.of(
            gettext_lazy("%(record)s has already been merged into another record; reopen the duplicates."),
            record=archived,
        )
    content_type = ContentType.objects.get_for_model(model)
    # Refused before locking: a running merge holds its records locked until it ends. Checked again once locked,
    # so two requests for the same records at once (two tabs, the queue and the card) cannot both pass.
    _refuse_pending(model, content_type, {}, pks)
    records = lock_records(model, pks)
    _refuse_pending(model, content_type, records, pks)
    job = MergeJob.objects.create(
        entity_key=spec.key,
        content_type=content_type,
        survivor_id=survivor.pk,
        absorbed_ids=absorbed_pks,
        choices=choices,
        expected=expected,
        left_out_ids=sorted({int(pk) for pk in left_out} - set(pks)),
        created_by=user,
        language=translation.get_language() or "",
        celery_task_id=str(uuid.uuid4()),
    )
    MergeJobRecord.objects.bulk_create(
        [MergeJobRecord(job=job, content_type=content_type, record_id=survivor.pk, role=MergeJobRecord.Role.SURVIVOR)]
        + [
            MergeJobRecord(job=job, content_type=content_type, record_id=pk, role=MergeJobRecord.Role.ABSORBED)
            for pk in absorbed_pks
        ]
    )
    task_send(MERGE_TASK, args=[job.pk], task_id=job.celery_task_id, on_failure=partial(_job_not_sent, job.pk))
    return job


def _refuse_pending(model, content_type, records: dict, pks: Sequence) -> None:
    """Refuse records already in a merge or undo that has not ended: one job at a time per record."""
    busy = (
        MergeJobRecord.objects.filter(
            content_type=content_type, record_id__in=list(pks), job__status__in=PENDING_STATUSES
        )
        .order_by("record_id")
        .values_list("record_id", "job_id")
        .first()
    )
    if busy is not None:
        record_id, job_id = busy
        record = records.get(record_id) or model._base_manager.filter(pk=record_id).first()
        raise MergeError.of(
            gettext_lazy("%(record)s is already in merge #%(job)s, which has not ended yet; wait for it, then try again."),
            record=record if record is not None else f"#{record_id}",
            job=job_id,
        )


def _job_not_sent(job_id: int, error: Exception) -> None:
    """The merge's message could not be published: fail the job at once, saying why, and tell the user."""
    logger.warning("Merge job %s could not be sent to the workers: %s", job_id, error)
    merge_job_fail(job_id=job_id, reason=NOT_SENT_REASON)




def _job_records(job: MergeJob):
    model = job.content_type.model_class()
    if model is None:
        raise MergeError.of(gettext_lazy("The kind of records this merge was for no longer exists."))
    pks = [job.survivor_id, *job.absorbed_ids]
    found = model._base_manager.in_bulk(pks)
    _refuse_missing(model, pks, found)
    return found[job.survivor_id], [found[pk] for pk in job.absorbed_ids]


def _job_permission_check(job: MergeJob) -> None:
    """Check again, in the worker, that the requester may change every kind of row the merge moves: rows may
    have been added, or permissions taken away, since the job was queued. A refusal fails the job."""
    try:
        related_permission_check(
            user=job.created_by, model=job.content_type.model_class(), absorbed_pks=job.absorbed_ids
        )
    except PermissionDenied as denied:
        raise MergeError(denied.args[0] if denied.args else str(denied)) from None


def _fault_test_delay() -> None:
    """Sleep inside the merge transaction when the fault tests ask (DEDUP_FAULT_TEST_MERGE_DELAY seconds), so a
    worker can be killed mid-merge. Never set outside those tests."""
    delay = float(getattr(settings, "DEDUP_FAULT_TEST_MERGE_DELAY", 0) or 0)
    if delay > 0:
        time.sleep(delay)


def _notify(job: MergeJob, *, level: str, message: str, user=None) -> None:
    """Notify the requester of the merge (or ``user``, the one who asked for its undo)."""
    user = user or job.created_by
    if user is None:
        return
    model = job.content_type.model_class()
    url = record_admin_url(model, job.survivor_id) if model is not None else ""
    notification_send(user=user, level=level, message=message, url=url, job=job)


def _locked_jobs():
    # Lock the job row only ("of self"): PostgreSQL cannot lock the nullable side of the join to the user, and
    # locking the content type row would hold up every insert of a note or phone anywhere meanwhile.
    return MergeJob.objects.select_for_update(of=("self",)).select_related("content_type", "created_by")


def merge_job_run(*, job_id: int) -> MergeJob | None:
    """Run a queued merge job exactly once, however often its task is delivered.

    The job row is locked for the whole merge: a second delivery waits, then finds it done and does nothing;
    a delivery after a worker died mid-merge finds it still running (the dead worker's transaction rolled
    back) and does the work. A MergeError fails the job with the reason and leaves every record as it was.
    """
    with transaction.atomic():
        job = MergeJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in (MergeJob.Status.QUEUED, MergeJob.Status.RUNNING):
            return job
        if job.status == MergeJob.Status.QUEUED:
            # Committed on its own, so the screens show "running" while the merge transaction works.
            job.status = MergeJob.Status.RUNNING
            job.started_at = timezone.now()
            job.save(update_fields=["status", "started_at"])

    with transaction.atomic():
        job = _locked_jobs().get(pk=job_id)
        if job.status != MergeJob.Status.RUNNING:
            return job  # another delivery finished it while this one waited for the lock
        with translation.override(job.language or None):
            try:
                survivor, absorbed = _job_records(job)
                _job_permission_check(job)
                # A manager's merge is match evidence for the learned model: the values as they were before it.
                evidence = None
                if job.created_by_id:
                    evidence = decision_values(type(survivor), [survivor.pk, *(record.pk for record in absorbed)])
                result = records_merge(
                    survivor=survivor,
                    absorbed=absorbed,
                    choices=job.choices,
                    user=job.created_by,
                    expected=job.expected,
                    left_out=job.left_out_ids or (),
                )
                _fault_test_delay()
            except MergeError as error:
                _job_failed(job, reason=error.message)
                return job
            job.status = MergeJob.Status.DONE
            job.error, job.error_data = "", None
            job.snapshot = result.snapshot
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error", "error_data", "snapshot", "finished_at"])
            audit.merge_logged(user=job.created_by, job_id=job.pk, survivor=result.survivor, absorbed=result.absorbed)
            if evidence:
                scoring_decision_send(entity=type(survivor), pairs=[(survivor.pk, record.pk) for record in absorbed],
                                      is_match=True, values=evidence)
            _notify(
                job,
                level=Notification.Level.SUCCESS,
                message=Message(messages.MERGE_FINISHED, count=len(result.absorbed), record=result.survivor),
            )
    return job


def _job_failed(job: MergeJob, *, reason) -> None:
    """Fail a job (its row locked) with a reason, stored as a message (a lazy text, a Message or, from code
    older than the message ids, plain text), and tell the requester."""
    if isinstance(reason, Promise):
        reason = Message.of(reason)
    job.status = MergeJob.Status.FAILED
    job.error = str(reason)
    job.error_data = messages.message_data(reason)
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "error_data", "finished_at"])
    _notify(job, level=Notification.Level.ERROR, message=Message(messages.MERGE_FAILED, reason=reason))


@transaction.atomic
def merge_job_fail(*, job_id: int, reason) -> MergeJob | None:
    """Mark a queued or running job failed (its task gave up); the records were never changed."""
    job = _locked_jobs().filter(pk=job_id).first()
    if job is None or job.status not in (MergeJob.Status.QUEUED, MergeJob.Status.RUNNING):
        return job
    with translation.override(job.language or None):
        _job_failed(job, reason=reason)
    return job
