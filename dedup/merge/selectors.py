"""Reads of the merge engine: a record's merge history, where an archived record went, row locks."""
from __future__ import annotations

from collections.abc import Sequence

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import QuerySet

from dedup.models import MergeJob

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


def lock_records(model: type[models.Model], pks: Sequence) -> dict:
    """Lock the records' rows, always in pk order, so overlapping merges wait for each other, never deadlock.

    Return {pk: record} of those that exist. (On SQLite, which has no row locks, the write lock of the
    transaction serialises merges instead.)
    """
    queryset = model._base_manager.filter(pk__in=list(pks)).order_by("pk").select_for_update()
    return {record.pk: record for record in queryset}
