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


@transaction.atomic
def scoring_model_save(*, entity: str, model: Model, records: int = 0, candidate_pairs: int = 0) -> ScoringModel:
    """Store a freshly learned model of the entity (its threshold and decision counts are kept)."""
    stored, _created = ScoringModel.objects.select_for_update().get_or_create(
        entity=entity, defaults={"prior": model.prior})
    stored.prior = model.prior
    stored.records = records
    stored.candidate_pairs = candidate_pairs
    stored.learned_at = timezone.now()
    stored.save()
    _weights_replace(stored, model)
    return stored


def _weights_replace(stored: ScoringModel, model: Model) -> None:
    stored.weights.all().delete()
    ScoringWeight.objects.bulk_create(
        ScoringWeight(model=stored, field=weights.name, field_type=weights.type, level=level, position=position,
                      m=weights.m[position], u=weights.u[position])
        for weights in model.fields
        for position, level in enumerate(weights.levels)
    )


def scoring_model_load(*, entity: str, labels: Mapping[str, str] | None = None) -> Model | None:
    """Return the entity's stored model (without term frequencies, which belong to a scan), or None."""
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
        if weight.position < len(weights.m):
            weights.m[weight.position] = weight.m
            weights.u[weight.position] = weight.u
    return Model(fields=list(by_field.values()), prior=stored.prior)


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
    gammas = matcher.comparison_levels(read, index)
    labels = [is_match for _left, _right, is_match in pairs]
    fold_labels(model, gammas, labels)
    _weights_replace(stored, model)
    stored.merges_folded += sum(1 for label in labels if label)
    stored.not_duplicates_folded += sum(1 for label in labels if not label)
    stored.save(update_fields=["merges_folded", "not_duplicates_folded", "updated_at"])
    return model
