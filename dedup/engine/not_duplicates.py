"""Services of duplicate control's engine: remember pairs a manager said are not duplicates."""
from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.translation import gettext as _

from dedup import registry
from dedup.engine.counts import counts_refresh
from dedup.models import NotDuplicate
from dedup.registry import EntitySpec


def _spec(entity: str | EntitySpec | type[models.Model] | None, record: models.Model | None) -> EntitySpec:
    if isinstance(entity, EntitySpec):
        return entity
    if isinstance(entity, str):
        try:
            return registry.get(entity)
        except KeyError:
            raise ValidationError(_("%(entity)s is not an entity duplicate control knows.") % {"entity": entity})
    model = entity if entity is not None else type(record) if record is not None else None
    spec = registry.for_model(model) if model is not None else None
    if spec is None:
        raise ValidationError(_("These records do not take part in duplicate control."))
    return spec


@transaction.atomic
def not_duplicate_mark(
    *,
    entity: str | EntitySpec | type[models.Model] | None = None,
    record_ids: Iterable[int] | None = None,
    pair: tuple[int, int] | None = None,
    record: models.Model | None = None,
    other: models.Model | None = None,
    user=None,
) -> int:
    """Remember that records are not duplicates of each other; return how many pairs were new.

    Give the records as `record_ids` (every pair among them is marked), as a `pair` of ids, or as two
    instances `record` and `other`. A pair is stored lowest id first, so it is found in either order; the
    finder never reports it again (cards, scans, incoming leads).
    """
    spec = _spec(entity, record)
    ids: list[int] = []
    if record_ids is not None:
        ids.extend(record_ids)
    if pair is not None:
        ids.extend(pair)
    if record is not None:
        ids.append(record.pk)
    if other is not None:
        if spec.model is not type(other)._meta.concrete_model:
            raise ValidationError(_("Only records of the same kind can be marked as not duplicates."))
        ids.append(other.pk)
    try:
        unique = sorted({int(pk) for pk in ids})
    except (TypeError, ValueError):
        raise ValidationError(_("Record ids must be whole numbers."))
    if len(unique) < 2:
        raise ValidationError(_("Choose at least two different records."))
    found = set(spec.model._base_manager.filter(pk__in=unique).values_list("pk", flat=True))
    missing = [pk for pk in unique if pk not in found]
    if missing:
        raise ValidationError(
            _("These records do not exist: %(ids)s.") % {"ids": ", ".join(f"#{pk}" for pk in missing)}
        )
    pairs = list(combinations(unique, 2))
    existing = set(
        NotDuplicate.objects.filter(entity=spec.key, low_id__in=unique, high_id__in=unique).values_list(
            "low_id", "high_id"
        )
    )
    new = [
        NotDuplicate(entity=spec.key, low_id=low, high_id=high, created_by=user if _is_user(user) else None)
        for low, high in pairs
        if (low, high) not in existing
    ]
    NotDuplicate.objects.bulk_create(new, ignore_conflicts=True)
    counts_refresh(entity=spec, pks=unique)
    return len(new)


@transaction.atomic
def not_duplicate_clear(*, entity: str | EntitySpec | type[models.Model], pair: tuple[int, int]) -> int:
    """Forget that two records are not duplicates (they may be reported again); return pairs removed."""
    spec = _spec(entity, None)
    low, high = sorted(int(pk) for pk in pair)
    deleted, _rows = NotDuplicate.objects.filter(entity=spec.key, low_id=low, high_id=high).delete()
    counts_refresh(entity=spec, pks=[low, high])
    return deleted


def not_duplicates_write(
    *, entity: str | EntitySpec | type[models.Model], kept_ids: Iterable[int], left_out_ids: Iterable[int], user=None
) -> list[list[int]]:
    """Store every record left out of a merge as not a duplicate of every merged record; return the new pairs.

    Only the pairs that were not stored before are returned ([low, high]): they are what the merge's undo
    forgets again, while a pair a manager had confirmed earlier stays.
    """
    spec = _spec(entity, None)
    kept = {int(pk) for pk in kept_ids}
    left_out = {int(pk) for pk in left_out_ids} - kept
    wanted = {tuple(sorted((a, b))) for a in kept for b in left_out}
    if not wanted:
        return []
    ids = kept | left_out
    existing = set(
        NotDuplicate.objects.filter(entity=spec.key, low_id__in=ids, high_id__in=ids).values_list("low_id", "high_id")
    )
    new = sorted(wanted - existing)
    NotDuplicate.objects.bulk_create(
        [
            NotDuplicate(entity=spec.key, low_id=low, high_id=high, created_by=user if _is_user(user) else None)
            for low, high in new
        ],
        ignore_conflicts=True,
    )
    counts_refresh(entity=spec, pks=ids)
    return [list(pair) for pair in new]


def _is_user(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None


def not_duplicates_carry(
    *, entity: str | EntitySpec | type[models.Model], survivor_id: int, absorbed_ids: Iterable[int]
) -> list[list[int]]:
    """Give the survivor of a merge the "not a duplicate" pairs of the records it absorbed; return the new pairs.

    A manager who said record B is not record C meant the person behind B: once B is merged into A, A is not C
    either, so C must not come back as A's duplicate. Pairs among the merged records themselves are dropped (they
    are one record now). The pairs returned ([low, high]) are what an undo removes again.
    """
    spec = _spec(entity, None)
    absorbed = {int(pk) for pk in absorbed_ids}
    merged = absorbed | {int(survivor_id)}
    others: set[int] = set()
    for low, high in NotDuplicate.objects.filter(
        models.Q(low_id__in=absorbed) | models.Q(high_id__in=absorbed), entity=spec.key
    ).values_list("low_id", "high_id"):
        other = high if low in absorbed else low
        if other not in merged:
            others.add(other)
    if not others:
        return []
    wanted = {tuple(sorted((int(survivor_id), other))) for other in others}
    existing = set(
        NotDuplicate.objects.filter(
            models.Q(low_id=survivor_id) | models.Q(high_id=survivor_id), entity=spec.key
        ).values_list("low_id", "high_id")
    )
    new = sorted(wanted - existing)
    NotDuplicate.objects.bulk_create(
        [NotDuplicate(entity=spec.key, low_id=low, high_id=high) for low, high in new], ignore_conflicts=True
    )
    return [list(pair) for pair in new]


def not_duplicates_forget(*, entity: str | EntitySpec | type[models.Model], pairs: Iterable[Iterable[int]]) -> int:
    """Remove pairs a merge carried over (its undo); return how many were removed."""
    spec = _spec(entity, None)
    pairs = [list(pair) for pair in pairs]
    condition = models.Q()
    for low, high in pairs:
        condition |= models.Q(low_id=low, high_id=high)
    if not condition:
        return 0
    deleted, _rows = NotDuplicate.objects.filter(condition, entity=spec.key).delete()
    counts_refresh(entity=spec, pks={int(pk) for pair in pairs for pk in pair})
    return deleted


@transaction.atomic
def not_duplicates_forget_pairs(*, pairs: Iterable[NotDuplicate], user=None) -> int:
    """Forget stored pairs (an admin's decision): the records may be reported as duplicates again.

    Each record's History says so when a user did it. Return how many pairs were forgotten.
    """
    from dedup import audit  # audit names records the way the merge engine does

    forgotten = 0
    for pair in pairs:
        deleted, _rows = NotDuplicate.objects.filter(pk=pair.pk).delete()
        forgotten += deleted
        try:
            model = registry.get(pair.entity).model
        except KeyError:
            continue
        counts_refresh(entity=pair.entity, pks=[pair.low_id, pair.high_id])
        records = list(model._base_manager.filter(pk__in=[pair.low_id, pair.high_id]).order_by("pk"))
        if deleted and len(records) == 2:
            audit.not_duplicates_logged(user=user, records=records, forgotten=True)
    return forgotten
