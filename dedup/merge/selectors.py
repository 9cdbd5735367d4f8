"""Reads of the merge engine: a record's merge history, where an archived record went, row locks."""
from __future__ import annotations

from collections.abc import Sequence

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import QuerySet

from dedup.models import MergeJob, MergeJobRecord

# An archived record points at its survivor, which may itself have been merged later: follow at most this
# many links (a chain longer than that is a loop made by hand in the database).
MAX_MERGE_CHAIN = 20


def merge_history(record: models.Model) -> QuerySet[MergeJob]:
    """Return the merge jobs the record took part in, as survivor or absorbed, newest first."""
    content_type = ContentType.objects.get_for_model(record)
    return (
        MergeJob.objects.filter(content_type=content_type, records__record_id=record.pk)
        .select_related("created_by", "undone_by")
        .distinct()
        .order_by("-created_at", "-id")
    )


def merged_survivor(record: models.Model) -> models.Model | None:
    """Return the live record an archived record was merged into (following later merges), or None."""
    model = type(record)._meta.concrete_model
    current = record
    seen = {record.pk}
    for _step in range(MAX_MERGE_CHAIN):
        if not getattr(current, "is_archived", False) or not getattr(current, "merged_into_id", None):
            return current if current is not record else None
        if current.merged_into_id in seen:
            return None
        seen.add(current.merged_into_id)
        current = model._base_manager.filter(pk=current.merged_into_id).first()
        if current is None:
            return None
    return None


def record_state(model: type[models.Model], pk) -> dict:
    """Return what an open card compares to know its record changed: a stamp of the record's version and of the
    newest merge or undo it took part in, and where it went if it was merged away. Two indexed queries.

    {"stamp": "…", "merged_into": pk or None, "gone": bool}
    """
    from .fields import ARCHIVED_FIELD, MERGED_INTO_FIELD, VERSION_FIELD

    names = {f.attname for f in model._meta.concrete_fields}
    wanted = [name for name in (VERSION_FIELD, ARCHIVED_FIELD, f"{MERGED_INTO_FIELD}_id") if name in names]
    row = model._base_manager.filter(pk=pk).values(*wanted).first()
    if row is None:
        return {"stamp": "gone", "merged_into": None, "gone": True}
    content_type = ContentType.objects.get_for_model(model)
    job = (
        # Merges that changed data: a queued, running or failed one has changed nothing yet.
        MergeJobRecord.objects.filter(
            content_type=content_type, record_id=pk, job__status__in=(MergeJob.Status.DONE, MergeJob.Status.UNDONE)
        )
        .order_by("-job_id")
        .values_list("job_id", "job__status")
        .first()
    )
    stamp = record_stamp(row.get(VERSION_FIELD), job)
    merged_into = row.get(f"{MERGED_INTO_FIELD}_id") if row.get(ARCHIVED_FIELD) else None
    return {"stamp": stamp, "merged_into": merged_into, "gone": False}


def record_stamp(version, job: tuple | None) -> str:
    """The stamp of record_state: the record's version and (id, status) of the newest merge or undo that changed it
    (done or undone), if any. The card draws it from what it has read already (dedup/admin/card.py)."""
    return "|".join([version.isoformat() if version else "", "%s:%s" % job if job else ""])


def lock_records(model: type[models.Model], pks: Sequence) -> dict:
    """Lock the records' rows, always in pk order, so overlapping merges wait for each other, never deadlock.

    Return {pk: record} of those that exist. (On SQLite, which has no row locks, the write lock of the
    transaction serialises merges instead.)
    """
    queryset = model._base_manager.filter(pk__in=list(pks)).order_by("pk").select_for_update()
    return {record.pk: record for record in queryset}
