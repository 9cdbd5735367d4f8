"""Keep an entity's learned scoring model in the database and fold managers' decisions into it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from django.db import transaction
from django.utils import timezone

from dedup.engine.scoring import matcher
from dedup.engine.scoring.comparisons import LEVELS
from dedup.engine.scoring.model import FieldWeights, Model, fold_labels
from dedup.models import ScoringModel, ScoringWeight


# Frequent values kept per field (the most frequent first): enough for every value held by three or more records
# of a million-record base's name and company fields in practice; a value left out counts as rare (the floor),
# i.e. slightly more than its true weight, and only values past the top FREQUENT_VALUES are left out.
FREQUENT_VALUES = 5000
SHARED_VALUES = 5000


def frequencies_of(model: Model) -> dict:
    """Return the model's value frequencies as stored: per field the floor, the frequent values, shared values."""
    stored = {}
    for weights in model.fields:
        values = dict(sorted(weights.tf.items(), key=lambda item: (-item[1], item[0]))[:FREQUENT_VALUES])
        # A value at the floor is what a value not listed gets anyway.
        values = {value: share for value, share in values.items() if share > weights.tf_floor}
        shared = dict(sorted(weights.shared.items(), key=lambda item: (-item[1], item[0]))[:SHARED_VALUES])
        if values or shared or weights.tf_floor:
            stored[weights.name] = {"floor": weights.tf_floor, "values": values, "shared": shared}
    return stored


def _frequencies_apply(model: Model, frequencies: Mapping) -> None:
    for weights in model.fields:
        found = frequencies.get(weights.name) if isinstance(frequencies, Mapping) else None
        if not isinstance(found, Mapping):
            continue
        try:
            weights.tf_floor = float(found.get("floor") or 0.0)
            weights.tf = {str(value): float(share) for value, share in (found.get("values") or {}).items()}
            weights.shared = {str(value): int(people) for value, people in (found.get("shared") or {}).items()}
        except (TypeError, ValueError, AttributeError):  # a hand-edited or damaged map: no adjustment
            weights.tf_floor, weights.tf, weights.shared = 0.0, {}, {}


@transaction.atomic
def scoring_model_save(*, entity: str, model: Model, records: int = 0, candidate_pairs: int = 0) -> ScoringModel:
    """Store a freshly learned model of the entity (its threshold and decision counts are kept)."""
    stored, _created = ScoringModel.objects.select_for_update().get_or_create(
        entity=entity, defaults={"prior": model.prior})
    stored.prior = model.prior
    stored.records = records
    stored.candidate_pairs = candidate_pairs
    stored.learned_at = timezone.now()
    stored.frequencies = frequencies_of(model)
    stored.save()
    _weights_replace(stored, model)
    return stored


def _weights_replace(stored: ScoringModel, model: Model) -> None:
    stored.weights.all().delete()
    ScoringWeight.objects.bulk_create(
        ScoringWeight(model=stored, field=weights.name, field_type=weights.type, level=level, position=position,
                      m=weights.m[position], u=weights.u[position],
                      m_contact=weights.m_contact[position] if weights.m_contact is not None else None,
                      u_contact=weights.u_contact[position] if weights.u_contact is not None else None)
        for weights in model.fields
        for position, level in enumerate(weights.levels)
    )


def scoring_model_load(*, entity: str, labels: Mapping[str, str] | None = None) -> Model | None:
    """Return the entity's stored model, its value frequencies included, or None."""
    stored = ScoringModel.objects.filter(entity=entity).first()
    if stored is None:
        return None
    by_field: dict[str, FieldWeights] = {}
    for weight in stored.weights.order_by("field", "position"):
        weights = by_field.get(weight.field)
        if weights is None:
            size = len(LEVELS.get(weight.field_type, ()))
            weights = FieldWeights(weight.field, weight.field_type, [0.0] * size, [0.0] * size,
                                   label=(labels or {}).get(weight.field, weight.field))
            by_field[weight.field] = weights
        # By the level's name: a model stored before a level was added keeps its other levels in place (the new
        # one weighs nothing until the model is learned again).
        levels = weights.levels
        position = levels.index(weight.level) if weight.level in levels else weight.position
        if position < len(weights.m):
            weights.m[position] = weight.m
            weights.u[position] = weight.u
            if weight.m_contact is not None and weight.u_contact is not None:
                if weights.m_contact is None:
                    weights.m_contact, weights.u_contact = [0.0] * len(weights.m), [0.0] * len(weights.u)
                weights.m_contact[position] = weight.m_contact
                weights.u_contact[position] = weight.u_contact
    model = Model(fields=list(by_field.values()), prior=stored.prior)
    _frequencies_apply(model, stored.frequencies or {})
    return model


@transaction.atomic
def scoring_decisions_fold(*, entity: str, schema: Sequence[matcher.FieldSpec],
                           pairs: Sequence[tuple[Mapping, Mapping, bool]]) -> Model | None:
    """Fold managers' decisions into the entity's model: each (record values, other record values, is a match).

    A merge is a match (its pair's levels count towards m), a "not a duplicate" a non-match (towards u). The
    fields are compared exactly as the matcher compares them; the stored weights are updated in place.
    """
    stored = ScoringModel.objects.select_for_update().filter(entity=entity).first()
    if stored is None or not pairs:
        return None
    model = scoring_model_load(entity=entity)
    schema = [spec for spec in schema if spec.name in {weights.name for weights in model.fields}]
    order = {spec.name: position for position, spec in enumerate(schema)}
    model.fields.sort(key=lambda weights: order.get(weights.name, len(order)))
    rows = [record for left, right, _match in pairs for record in (left, right)]
    read = matcher.read_records(rows, schema)
    index = np.arange(len(rows), dtype=np.int64).reshape(-1, 2)
    gammas = matcher.comparison_levels(read, index, shared=matcher.model_shared(model))
    labels = [is_match for _left, _right, is_match in pairs]
    fold_labels(model, gammas, labels)
    _weights_replace(stored, model)
    stored.merges_folded += sum(1 for label in labels if label)
    stored.not_duplicates_folded += sum(1 for label in labels if not label)
    stored.save(update_fields=["merges_folded", "not_duplicates_folded", "updated_at"])
    return model
