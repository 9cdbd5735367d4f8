"""Undo a merge from its snapshot: every field, row, link and flag back where it was, or a reason why not; and
undo as a service (now, or as a background job the admin asks for)."""
from __future__ import annotations

import logging
from functools import partial

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _

from dedup import audit, messages
from dedup.dispatch import task_send
from dedup.engine.not_duplicates import not_duplicates_forget
from dedup.messages import Message
from dedup.models import MergeJob, Notification

from . import fields as merge_fields
from .checks import merge_permission_check
from .errors import MergeError
from .jobs import NOT_SENT_REASON, UNDO_TASK, _fault_test_delay, _locked_jobs, _notify
from .relations import relation_restore
from .selectors import lock_records
from .services import _reindex_on_commit

logger = logging.getLogger(__name__)


def _check_safe(model: type[models.Model], snapshot: dict, records: dict) -> None:
    """Refuse an undo that would lose or overwrite data changed since the merge."""
    survivor_pk = snapshot["survivor"]
    survivor = records.get(survivor_pk)
    if survivor is None:
        raise MergeError.of(
            _("%(model)s #%(pk)s, the record the others were merged into, was deleted; the merge cannot be undone."),
            model=model._meta.verbose_name,
            pk=survivor_pk,
        )
    if getattr(survivor, merge_fields.ARCHIVED_FIELD):
        raise MergeError.of(
            _("%(record)s was itself merged into #%(other)s afterwards; undo that merge first."),
            record=survivor,
            other=getattr(survivor, f"{merge_fields.MERGED_INTO_FIELD}_id") or "?",
        )
    edited = []
    for name, values in snapshot["survivor_fields"].items():
        model_field = model._meta.get_field(name)
        if merge_fields.dump_value(model_field, getattr(survivor, model_field.attname)) != values["after"]:
            edited.append(merge_fields.field_label(model, name))
    if edited:
        raise MergeError.of(
            _(
                "%(fields)s of %(record__gen)s changed after the merge; undoing it would overwrite those edits. "
                "Put the merged value back first if you still want to undo."
            ),
            fields=", ".join(edited),
            record=survivor,
        )
    for pk in snapshot["absorbed"]:
        record = records.get(pk)
        if record is None:
            raise MergeError.of(
                _("%(model)s #%(pk)s, one of the merged records, was deleted; the merge cannot be undone."),
                model=model._meta.verbose_name,
                pk=pk,
            )
        if (
            not getattr(record, merge_fields.ARCHIVED_FIELD)
            or getattr(record, f"{merge_fields.MERGED_INTO_FIELD}_id") != survivor_pk
        ):
            raise MergeError.of(
                _("%(record)s is no longer archived in %(survivor__gen)s; the merge cannot be undone."),
                record=record,
                survivor=survivor,
            )


def snapshot_restore(*, model: type[models.Model], snapshot: dict) -> None:
    """Put everything a merge changed back from its snapshot; call inside a transaction."""
    if not snapshot or snapshot.get("version") != 1:
        raise MergeError(_("This merge has no record of what it changed, so it cannot be undone."))
    survivor_pk = snapshot["survivor"]
    absorbed_pks = snapshot["absorbed"]
    records = lock_records(model, [survivor_pk, *absorbed_pks])
    _check_safe(model, snapshot, records)
    survivor = records[survivor_pk]
    content_type = ContentType.objects.get_for_model(model)

    try:
        note = snapshot.get("note")
        if note:
            apps.get_model(note["model"])._base_manager.filter(pk=note["pk"]).delete()
        for entry in reversed(snapshot["relations"]):
            relation_restore(entry, survivor_pk=survivor_pk, content_type_id=content_type.pk)
        if snapshot.get("not_duplicates"):
            not_duplicates_forget(entity=model, pairs=snapshot["not_duplicates"])

        # The survivor first: a unique value it took goes back to its absorbed record only once it let go.
        for name, values in snapshot["survivor_fields"].items():
            model_field = model._meta.get_field(name)
            setattr(survivor, model_field.attname, merge_fields.load_value(model_field, values["before"]))
        survivor.save()

        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        restored = []
        names: set[str] = set()
        now = timezone.now()
        for pk in absorbed_pks:
            record = records[pk]
            for attname, data in snapshot["absorbed_fields"][str(pk)].items():
                model_field = by_attname[attname]
                setattr(record, attname, merge_fields.load_value(model_field, data))
                names.add(model_field.name)
            if merge_fields.VERSION_FIELD in by_attname:
                setattr(record, merge_fields.VERSION_FIELD, now)
                names.add(merge_fields.VERSION_FIELD)
            restored.append(record)
        model._base_manager.bulk_update(restored, sorted(names))
    except IntegrityError as error:
        raise MergeError.of(
            _("Undoing the merge would break a rule of the stored data (%(error)s); nothing was changed."),
            error=str(error),
        ) from error


# --- Undo as a service and a background job -------------------------------------------------------------------


@transaction.atomic
def merge_undo(*, job: MergeJob, user) -> MergeJob:
    """Undo a finished merge exactly, here and now, or raise MergeError saying why it would not be safe.

    The admin asks for undo through `merge_undo_request` (a background job); this is the engine it runs.
    """
    job = _locked_jobs().get(pk=job.pk)
    model = job.content_type.model_class()
    if model is None:
        raise MergeError.of(gettext_lazy("The kind of records this merge was for no longer exists."))
    merge_permission_check(user=user, model=model)
    if job.status not in (MergeJob.Status.DONE, MergeJob.Status.UNDOING):
        raise MergeError.of(
            gettext_lazy("Only a finished merge can be undone; this one is %(status)s."),
            status=MergeJob.Status(job.status).label,
        )
    snapshot_restore(model=model, snapshot=job.snapshot)
    job.status = MergeJob.Status.UNDONE
    job.undone_at = timezone.now()
    job.undone_by = user
    job.save(update_fields=["status", "undone_at", "undone_by"])
    restored = model._base_manager.in_bulk([job.survivor_id, *job.absorbed_ids])
    audit.undo_logged(
        user=user,
        job_id=job.pk,
        survivor=restored.get(job.survivor_id),
        absorbed=[restored[pk] for pk in job.absorbed_ids if pk in restored],
    )
    _reindex_on_commit(model, [job.survivor_id, *job.absorbed_ids])
    return job


@transaction.atomic
def merge_undo_request(*, job: MergeJob, user) -> MergeJob:
    """Queue the undo of a finished merge as a background job; the user is notified when it is done.

    Undoing a large merge moves as many rows as the merge did (160,000 rows took 28 s in a web request), so
    it runs in a worker like the merge, through the same machinery: the job is "being undone" meanwhile, its
    records cannot be put in another job, and a worker that dies is noticed by the sweeper.
    """
    job = _locked_jobs().get(pk=job.pk)
    model = job.content_type.model_class()
    if model is None:
        raise MergeError.of(gettext_lazy("The kind of records this merge was for no longer exists."))
    merge_permission_check(user=user, model=model)
    if job.status != MergeJob.Status.DONE:
        raise MergeError.of(
            gettext_lazy("Only a finished merge can be undone; this one is %(status)s."),
            status=MergeJob.Status(job.status).label,
        )
    job.status = MergeJob.Status.UNDOING
    job.undone_by = user
    job.undo_requested_at = timezone.now()
    # The worker writes the notification in the language of whoever asked last.
    job.language = translation.get_language() or job.language
    job.save(update_fields=["status", "undone_by", "undo_requested_at", "language"])
    task_send(UNDO_TASK, args=[job.pk], on_failure=partial(_undo_not_sent, job.pk))
    return job


def merge_undo_run(*, job_id: int) -> MergeJob | None:
    """Run a requested undo once, however often its task is delivered; a refusal puts the merge back to done."""
    with transaction.atomic():
        job = _locked_jobs().select_related("undone_by").filter(pk=job_id).first()
        if job is None or job.status != MergeJob.Status.UNDOING:
            return job
        model = job.content_type.model_class()
        with translation.override(job.language or None):
            try:
                if model is None:
                    raise MergeError.of(gettext_lazy("The kind of records this merge was for no longer exists."))
                with transaction.atomic():  # a refused undo leaves nothing half restored
                    snapshot_restore(model=model, snapshot=job.snapshot)
                    _fault_test_delay()
            except MergeError as error:
                _undo_back_to_done(job, reason=error.message)
                return job
            job.status = MergeJob.Status.UNDONE
            job.undone_at = timezone.now()
            job.save(update_fields=["status", "undone_at"])
            _reindex_on_commit(model, [job.survivor_id, *job.absorbed_ids])
            _notify(
                job,
                user=job.undone_by,
                level=Notification.Level.SUCCESS,
                message=Message(messages.UNDO_FINISHED, records=", ".join(
                    f"#{pk}" for pk in [job.survivor_id, *job.absorbed_ids]
                )),
            )
    return job


def _undo_back_to_done(job: MergeJob, *, reason) -> None:
    """The undo did not happen: the merge stands (done, undoable again) and whoever asked is told why."""
    undoer = job.undone_by
    job.status = MergeJob.Status.DONE
    job.undone_by = None
    job.undo_requested_at = None
    job.save(update_fields=["status", "undone_by", "undo_requested_at"])
    _notify(
        job,
        user=undoer,
        level=Notification.Level.ERROR,
        message=Message(messages.UNDO_FAILED, reason=Message.of(reason) if isinstance(reason, Promise) else reason),
    )


@transaction.atomic
def merge_undo_fail(*, job_id: int, reason) -> MergeJob | None:
    """End an undo that could not run (its task gave up, its worker died): the merge stays done."""
    job = _locked_jobs().select_related("undone_by").filter(pk=job_id).first()
    if job is None or job.status != MergeJob.Status.UNDOING:
        return job
    with translation.override(job.language or None):
        _undo_back_to_done(job, reason=reason)
    return job


def _undo_not_sent(job_id: int, error: Exception) -> None:
    logger.warning("The undo of merge job %s could not be sent to the workers: %s", job_id, error)
    merge_undo_fail(job_id=job_id, reason=NOT_SENT_REASON)
