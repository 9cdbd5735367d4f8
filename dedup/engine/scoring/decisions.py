"""Managers' decisions as evidence for the entity's learned model: a merge says "match", "not a duplicate" says not.

Where a decision is stored (a merge job finishing, ``not_duplicate_mark``) the service reads the records'
values as they are at that moment (before the merge moves phones and emails away from the absorbed records)
and sends ``FOLD_TASK`` after the commit; the task folds them into the stored m and u
(``store.scoring_decisions_fold``), which changes the model's ``updated_at``, so every process's screens reload
it on their next request. Nothing is read or sent when the entity has no learned model yet.

Undoing a merge or forgetting a "not a duplicate" does not take the evidence back out (the fold adds counts
to a running estimate); relearning (``dedup_score``) starts the model afresh from the data.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import models, transaction

from dedup import registry
from dedup.dispatch import task_send
from dedup.engine.scoring import store
from dedup.engine.scoring.entity import entity_records, entity_schema
from dedup.models import ScoringModel

FOLD_TASK = "dedup.scoring_decisions_fold"
# Pairs one decision folds at most: "not duplicates" over a group of 30 records is 435 pairs of one decision.
MAX_PAIRS_PER_DECISION = 100


def _entity(entity: str | type[models.Model]) -> registry.EntitySpec | None:
    if isinstance(entity, str):
        try:
            return registry.get(entity)
        except KeyError:
            return None
    return registry.for_model(entity)


def decision_values(entity: str | type[models.Model], pks: Iterable[int]) -> dict[int, dict] | None:
    """Return {pk: {field: [values]}} of the records as they are now, or None when the entity has no model.

    Read on fresh instances (never the caller's, whose prefetched relations a merge is about to change): one
    query for the stamp, one for the records and one per to-many relation.
    """
    spec = _entity(entity)
    if spec is None or not ScoringModel.objects.filter(entity=spec.key).exists():
        return None
    queryset = spec.model._base_manager.filter(pk__in=list(pks))
    return {
        pk: {name: [str(value) for value in found] for name, found in values.items()}
        for pk, values in entity_records(spec, queryset)
    }


def scoring_decision_send(
    *, entity: str | type[models.Model], pairs: Sequence[tuple[int, int]], is_match: bool, values: dict | None = None
) -> bool:
    """Send the decision's pairs to be folded into the model after the commit; return whether anything was sent.

    ``values`` are the records' values read earlier (``decision_values``, before a merge changed them);
    without them they are read now.
    """
    spec = _entity(entity)
    if spec is None or not pairs:
        return False
    pairs = list(pairs)[:MAX_PAIRS_PER_DECISION]
    if values is None:
        values = decision_values(spec.key, {pk for pair in pairs for pk in pair})
    if not values:
        return False
    payload = [[values[a], values[b]] for a, b in pairs if a in values and b in values]
    if not payload:
        return False
    task_send(FOLD_TASK, args=[spec.key, payload, bool(is_match)])
    return True


def scoring_decision_fold(*, entity: str, pairs: Sequence[Sequence[dict]], is_match: bool) -> bool:
    """Fold a decision's pairs of record values into the entity's stored model (the task's service)."""
    spec = _entity(entity)
    if spec is None:
        return False
    with transaction.atomic():
        model = store.scoring_decisions_fold(
            entity=spec.key,
            schema=entity_schema(spec),
            pairs=[(left, right, is_match) for left, right in pairs],
        )
    return model is not None
