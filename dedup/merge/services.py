"""The merge engine's services: merge records, queue and run a background merge, undo a merge."""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings

from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy

from dedup import audit, messages, registry
from dedup.dispatch import task_send
from dedup.engine.not_duplicates import not_duplicates_carry, not_duplicates_write
from dedup.engine.scoring.decisions import decision_values, scoring_decision_send
from dedup.messages import Message
from dedup.models import MergeJob, MergeJobRecord, Notification
from dedup.notifications import notification_send
from dedup.records import record_admin_url, record_label
from dedup.signals import records_bulk_saved

from . import fields as merge_fields
from .errors import MergeError
from .relations import moved_summary, relation_has_rows, relation_move, relations_for
from .selectors import lock_records

logger = logging.getLogger(__name__)

MERGE_PERMISSION = "dedup.merge_records"
# The registered names of the merge and undo jobs' Celery tasks (dedup/tasks.py); queued messages refer to them.
MERGE_TASK = "dedup.tasks.merge_job_run"
UNDO_TASK = "dedup.tasks.merge_undo_run"

# Jobs whose records may not be put in another job until they end.
PENDING_STATUSES = (MergeJob.Status.QUEUED, MergeJob.Status.RUNNING, MergeJob.Status.UNDOING)
# A running merge or undo holds its job row locked for its whole transaction; one that has been running this
# long and whose row nobody holds lost its worker (the sweeper ends it). Settings may override it in seconds
# (DEDUP_JOB_STALLED_AFTER); it only has to cover the instant between marking a job running and locking it.
JOB_STALLED_AFTER = timedelta(seconds=60)
# A job still queued this long was lost on its way (a worker died between taking its message and starting it,
# on a broker that does not deliver it again): it is failed so that its records are free again. Longer than
# Redis's visibility timeout, so a message that comes back is given its chance first. Settings may override it
# in seconds (DEDUP_JOB_QUEUED_TIMEOUT).
JOB_QUEUED_TIMEOUT = timedelta(hours=1)

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

# Where the note about a merge goes on the survivor, unless the entity's registration says otherwise
# (EntitySpec.extra["merge_note"]): the GenericRelation, the text field and the author field of its model.
DEFAULT_MERGE_NOTE = {"relation": "notes", "text_field": "text", "author_field": "author", "message_field": "message"}


def _has_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


@dataclass
class MergeResult:
    """What a merge did."""

    survivor: models.Model
    absorbed: list[models.Model]
    filled: dict[str, int] = field(default_factory=dict)  # {field name: pk the survivor's new value came from}
    moved: dict[str, int] = field(default_factory=dict)  # {"notes": 12, "orders": 3}
    removed_duplicates: int = 0
    note: models.Model | None = None
    snapshot: dict = field(default_factory=dict)


# --- Checks -------------------------------------------------------------------------------------------------


def merge_permission_check(*, user, model: type[models.Model]) -> None:
    """Raise PermissionDenied unless the user may merge records of ``model``."""
    opts = model._meta
    change = f"{opts.app_label}.{get_permission_codename('change', opts)}"
    if user is None or not user.is_active or not user.has_perm(change):
        raise PermissionDenied(
            Message.of(
                gettext_lazy("You may not change %(records)s, so you cannot merge them."),
                records=opts.verbose_name_plural,
            )
        )
    if not user.has_perm(MERGE_PERMISSION):
        raise PermissionDenied(Message.of(gettext_lazy("You do not have the permission to merge duplicate records.")))


def related_permission_check(*, user, model: type[models.Model], absorbed_pks: Sequence) -> None:
    """Raise PermissionDenied unless the user may change every kind of row the merge would move.

    A merge moves the absorbed records' orders, deals, notes... to the survivor: that changes those rows, so
    it needs the change permission on each of their models, as editing them in the admin would. Kinds the
    user may change are not even looked at; for the others, one EXISTS query each tells whether the absorbed
    records have such rows (a user who may not touch orders can still merge two customers without orders).
    Many-to-many links Django made itself (a record's tags) are part of the record, covered by its permission.
    """
    if user is None:
        return
    content_type_id = None
    refused = []
    for relation in relations_for(model):
        opts = relation.model._meta
        if opts.auto_created:
            continue
        if user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"):
            continue
        if content_type_id is None:
            content_type_id = ContentType.objects.get_for_model(model).pk
        if relation_has_rows(relation, owner_pks=absorbed_pks, content_type_id=content_type_id):
            refused.append(opts.verbose_name_plural)
    if refused:
        # A message with its parameters, so that a job this fails in the worker stores it as such.
        raise PermissionDenied(
            Message.of(
                gettext_lazy(
                    "The merge would move %(rows)s, which you may not change; "
                    "ask someone who may to merge these records."
                ),
                rows=list(dict.fromkeys(refused)),
            )
        )


def _mergeable_model(model: type[models.Model]) -> type[models.Model]:
    model = model._meta.concrete_model
    try:
        model._meta.get_field(merge_fields.ARCHIVED_FIELD)
        model._meta.get_field(merge_fields.MERGED_INTO_FIELD)
    except FieldDoesNotExist:
        raise MergeError.of(
            gettext_lazy("%(records)s cannot be merged: they have no archive for the merged records."),
            records=model._meta.verbose_name_plural,
        ) from None
    return model


def _merge_input(model, survivor, absorbed, choices, expected) -> tuple[list, dict, dict[str, str]]:
    """Check a merge's input as the service and the job both take it: (absorbed ids, choices, versions seen)."""
    if survivor.pk is None:
        raise MergeError.of(gettext_lazy("Only saved records can be merged."))
    absorbed_pks = _absorbed_pks(model, survivor, absorbed)
    pks = [survivor.pk, *absorbed_pks]
    return absorbed_pks, merge_fields.clean_choices(model, choices, pks), _clean_expected(expected, pks)


def _absorbed_pks(model: type[models.Model], survivor: models.Model, absorbed: Sequence[models.Model]) -> list:
    if isinstance(absorbed, models.Model):
        absorbed = [absorbed]
    absorbed = list(absorbed or [])
    if not absorbed:
        raise MergeError.of(gettext_lazy("Choose at least one record to merge into the priority record."))
    pks = []
    for record in absorbed:
        if record._meta.concrete_model is not model:
            raise MergeError.of(gettext_lazy("Only records of one kind can be merged together."))
        if record.pk is None:
            raise MergeError.of(gettext_lazy("Only saved records can be merged."))
        if record.pk == survivor.pk:
            raise MergeError.of(gettext_lazy("The priority record cannot be merged into itself."))
        if record.pk not in pks:
            pks.append(record.pk)
    return pks


def _parse_version(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        parsed = parse_datetime(str(value))
    except ValueError:
        parsed = None
    if parsed is None:
        raise MergeError.of(
            gettext_lazy("The record versions sent with the merge are unreadable; reopen the comparison.")
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _clean_expected(expected: Mapping | None, record_pks: Sequence) -> dict[str, str]:
    """Return {str(pk): ISO updated_at} for the records the user saw; records without a version are not checked."""
    cleaned = {}
    for pk, value in (expected or {}).items():
        parsed = _parse_version(value)
        if parsed is not None and str(pk) in {str(p) for p in record_pks}:
            cleaned[str(pk)] = parsed.isoformat()
    return cleaned


def _refuse_missing(model: type[models.Model], pks: Sequence, found: dict) -> None:
    """Refuse a merge some of whose records no longer exist, naming them."""
    missing = [str(pk) for pk in pks if pk not in found]
    if missing:
        raise MergeError.of(
            ngettext_lazy("%(model)s #%(ids)s no longer exists.", "%(model)s #%(ids)s no longer exist.", "count"),
            count=len(missing),
            model=model._meta.verbose_name,
            ids=", #".join(missing),
        )


def _check_current(model: type[models.Model], records: dict, pks: Sequence, expected: dict[str, str]) -> None:
    """Refuse records that are gone, archived, merged meanwhile, or changed since the user saw them."""
    _refuse_missing(model, pks, records)
    for pk in pks:
        record = records[pk]
        if getattr(record, merge_fields.ARCHIVED_FIELD):
            into = getattr(record, f"{merge_fields.MERGED_INTO_FIELD}_id")
            if into:
                raise MergeError.of(
                    gettext_lazy("%(record)s has already been merged into #%(survivor)s meanwhile; reopen the duplicates."),
                    record=record,
                    survivor=into,
                )
            raise MergeError.of(gettext_lazy("%(record)s is archived."), record=record)
        seen = expected.get(str(pk))
        current = getattr(record, merge_fields.VERSION_FIELD, None)
        if seen and current is not None and _parse_version(seen) != current:
            raise MergeError.of(
                gettext_lazy(
                    "%(record)s was changed by someone else after you opened the comparison; reopen it to see "
                    "the changes, then merge again."
                ),
                record=record,
            )


# --- The merge ----------------------------------------------------------------------------------------------


def _note_config(model: type[models.Model]):
    spec = registry.for_model(model)
    config = {**DEFAULT_MERGE_NOTE, **((spec.extra.get("merge_note") or {}) if spec else {})}
    try:
        relation = model._meta.get_field(config["relation"])
    except FieldDoesNotExist:
        return None
    if not isinstance(relation, GenericRelation):
        return None
    return relation, config


def _merge_note_create(*, model, survivor, absorbed, user, content_type) -> models.Model | None:
    """Write "Merged 2 records into this one: ..." on the survivor's timeline, authored by the user."""
    found = _note_config(model)
    if found is None:
        return None
    relation, config = found
    note_model = relation.related_model
    text = Message(messages.MERGE_NOTE, count=len(absorbed), records=list(absorbed))
    values = {
        relation.content_type_field_name: content_type,
        relation.object_id_field_name: survivor.pk,
        config["text_field"]: str(text),
    }
    if config.get("message_field") and _has_field(note_model, config["message_field"]):
        values[config["message_field"]] = text.data  # shown in the reader's language
    if user is not None and config.get("author_field"):
        try:
            note_model._meta.get_field(config["author_field"])
            values[config["author_field"]] = user
        except FieldDoesNotExist:
            pass
    return note_model._base_manager.create(**values)


def _validate_survivor(survivor: models.Model, plan: merge_fields.FieldPlan) -> None:
    """Check the changed fields and the record's own rules (a stage of another pipeline...) before writing."""
    if not plan.values:
        return
    changed = set(plan.changed_fields)
    exclude = [f.name for f in survivor._meta.concrete_fields if f.name not in changed]
    try:
        survivor.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        messages = []
        for name, errors in error.message_dict.items():
            label = merge_fields.field_label(type(survivor), name) if name != "__all__" else ""
            messages.extend(f"{label}: {message}" if label else message for message in errors)
        raise MergeError.of(
            gettext_lazy("The merged record would not be valid: %(errors)s"), errors=" ".join(messages)
        ) from error


@transaction.atomic
def records_merge(
    *,
    survivor: models.Model,
    absorbed: Sequence[models.Model],
    choices: Mapping[str, int] | None = None,
    user=None,
    expected: Mapping | None = None,
    left_out: Sequence[int] = (),
) -> MergeResult:
    """Merge ``absorbed`` into ``survivor`` in one transaction; raise MergeError and change nothing if it can't.

    The records are locked (in pk order) and re-read; any that is gone, archived, merged meanwhile or changed
    since the version in ``expected`` ({pk: updated_at}) refuses the merge. The survivor keeps its values,
    fills its empty fields from the absorbed records in order, or takes what ``choices`` ({field: pk}) says;
    every related row moves to it in bulk; the absorbed records are archived, pointing at it. Records in
    ``left_out`` (unticked by the manager) are stored as not duplicates of the merged records.
    """
    model = _mergeable_model(type(survivor))
    absorbed_pks, choices, expected = _merge_input(model, survivor, absorbed, choices, expected)
    pks = [survivor.pk, *absorbed_pks]

    records = lock_records(model, pks)
    _check_current(model, records, pks, expected)
    survivor = records[survivor.pk]
    absorbed = [records[pk] for pk in absorbed_pks]

    plan = merge_fields.plan_fields(survivor=survivor, absorbed=absorbed, choices=choices)
    fields_by_attname = {f.attname: f for f in model._meta.concrete_fields}
    before = {
        fields_by_attname[attname].name: merge_fields.dump_value(fields_by_attname[attname], getattr(survivor, attname))
        for attname in plan.values
    }
    for attname, value in plan.values.items():
        setattr(survivor, attname, value)
    _validate_survivor(survivor, plan)

    kept_fields = merge_fields.mergeable_fields(model) + [
        model._meta.get_field(merge_fields.ARCHIVED_FIELD),
        model._meta.get_field(merge_fields.MERGED_INTO_FIELD),
    ]
    absorbed_before = {str(record.pk): merge_fields.dump_record(record, kept_fields) for record in absorbed}
    content_type = ContentType.objects.get_for_model(model)
    now = timezone.now()
    try:
        entries = [
            entry
            for relation in relations_for(model)
            if (
                entry := relation_move(
                    relation, survivor_pk=survivor.pk, absorbed_pks=absorbed_pks, content_type_id=content_type.pk
                )
            )
        ]
        archived = {merge_fields.ARCHIVED_FIELD: True, f"{merge_fields.MERGED_INTO_FIELD}_id": survivor.pk}
        if merge_fields.VERSION_FIELD in fields_by_attname:
            archived[merge_fields.VERSION_FIELD] = now
        model._base_manager.filter(pk__in=absorbed_pks).update(**archived)
        # A unique value the survivor takes moves: cleared on its old record before the survivor gets it.
        for pk, values in plan.cleared.items():
            model._base_manager.filter(pk=pk).update(**values)
        for record in absorbed:  # the instances returned say what the rows now say
            for attname, value in {**archived, **plan.cleared.get(record.pk, {})}.items():
                setattr(record, attname, value)
        survivor.save()
        carried = _not_duplicates_carry(model, survivor.pk, absorbed_pks)
        if left_out and registry.for_model(model) is not None:
            carried += not_duplicates_write(entity=model, kept_ids=pks, left_out_ids=left_out, user=user)
        note = _merge_note_create(
            model=model, survivor=survivor, absorbed=absorbed, user=user, content_type=content_type
        )
    except IntegrityError as error:
        raise MergeError.of(
            gettext_lazy("The merge would break a rule of the stored data (%(error)s); nothing was changed."),
            error=str(error),
        ) from error

    after = {
        fields_by_attname[attname].name: merge_fields.dump_value(fields_by_attname[attname], getattr(survivor, attname))
        for attname in plan.values
    }
    snapshot = {
        "version": 1,
        "model": model._meta.label_lower,
        "survivor": survivor.pk,
        "absorbed": absorbed_pks,
        "survivor_fields": {name: {"before": before[name], "after": after[name]} for name in before},
        "absorbed_fields": absorbed_before,
        "relations": entries,
        "not_duplicates": carried,
        "note": {"model": note._meta.label_lower, "pk": note.pk} if note is not None else None,
    }
    _reindex_on_commit(model, pks)
    return MergeResult(
        survivor=survivor,
        absorbed=absorbed,
        filled=dict(plan.sources),
        moved=moved_summary(entries),
        removed_duplicates=sum(len(entry["removed"]) for entry in entries),
        note=note,
        snapshot=snapshot,
    )


def _not_duplicates_carry(model: type[models.Model], survivor_pk, absorbed_pks: Sequence) -> list[list[int]]:
    """Carry the absorbed records' "not a duplicate" pairs to the survivor (entities duplicate control knows)."""
    if registry.for_model(model) is None:
        return []
    return not_duplicates_carry(entity=model, survivor_id=survivor_pk, absorbed_ids=absorbed_pks)


def _reindex_on_commit(model: type[models.Model], pks: Sequence) -> None:
    """Tell the match-key index the records changed in bulk: it re-keys the survivor, drops the archived."""
    transaction.on_commit(partial(records_bulk_saved.send, sender=model, model=model, pks=list(pks)))


# --- Background merge ---------------------------------------------------------------------------------------


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


# --- Undo ---------------------------------------------------------------------------------------------------


@transaction.atomic
def merge_undo(*, job: MergeJob, user) -> MergeJob:
    """Undo a finished merge exactly, here and now, or raise MergeError saying why it would not be safe.

    The admin asks for undo through `merge_undo_request` (a background job); this is the engine it runs.
    """
    from .undo import snapshot_restore

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
    from .undo import snapshot_restore

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


# --- Sweeper ------------------------------------------------------------------------------------------------


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
