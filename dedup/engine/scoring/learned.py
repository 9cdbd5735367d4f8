"""An entity's learned scoring model as the screens and the finder score with it: loaded once per process.

Every caller that scores pairs with the stored model (the finder through dedup.engine.decide, the card's list,
the compare screen and the review queue through dedup.engine.scoring.pairs) asks ``learned_model`` here, so the
weights are read from the database once per process and per version of the model, not once per caller.

The version is the model's stamp, (id, updated_at): a new learn, a folded decision or a threshold change moves
``updated_at`` (kind 3 of the caching rule in docs/ARCHITECTURE.md: rows kept per process, checked against the
database on every use). A caller that read the stamp already (the finder reads it with the rules,
rules.active_rules) passes it and pays no query; otherwise it is one query. Loading the weights is two more,
once per process and version.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from django.utils import translation

from dedup.engine.scoring import matcher
from dedup.engine.scoring.entity import entity_schema
from dedup.engine.scoring.model import Model
from dedup.engine.scoring.store import scoring_model_load
from dedup.models import ScoringModel
from dedup.registry import EntitySpec

# "The caller did not read the stamp": one query reads it (None would mean "the entity has no model").
STAMP_UNKNOWN = object()


@dataclass(frozen=True)
class Learned:
    """The stored model of an entity with the fields it compares, side by side in one order (the scorer and the
    explanation read them together); a field registered after the model was learned has no weights yet and is
    left out."""

    stamp: tuple
    schema: tuple[matcher.FieldSpec, ...]
    model: Model


# entity -> Learned; replaced whole, so readers never see half an entry.
_cache: dict[str, Learned] = {}
_lock = threading.Lock()


def model_stamp(entity: str) -> tuple | None:
    """Return the entity's model stamp (id, updated_at, threshold), or None when no model was learned."""
    return ScoringModel.objects.filter(entity=entity).values_list("pk", "updated_at", "threshold").first()


def learned_model(spec: EntitySpec, stamp=STAMP_UNKNOWN) -> Learned | None:
    """Return the entity's learned model ready to score, or None (none learned yet, or no field in common).

    ``stamp``: the model's stamp as model_stamp returns it (only its id and updated_at are read), None when the
    caller knows there is no model, or left out to read it here (one query).
    """
    if stamp is STAMP_UNKNOWN:
        stamp = model_stamp(spec.key)
    if stamp is None:
        return None
    version = tuple(stamp[:2])
    cached = _cache.get(spec.key)
    if cached is not None and cached.stamp == version:
        return cached if cached.schema else None
    # Field labels as English message ids: Reason.text() translates them when it renders, in the reader's
    # language, so one loaded model serves every language.
    with translation.override(None):
        schema = entity_schema(spec)
    model = scoring_model_load(entity=spec.key, labels={field.name: field.label for field in schema})
    if model is None:
        return None
    weights = {field.name: field for field in model.fields}
    schema = [field for field in schema if field.name in weights]
    learned = Learned(
        stamp=version,
        schema=tuple(schema),
        model=Model(fields=[weights[field.name] for field in schema], prior=model.prior),
    )
    with _lock:
        _cache[spec.key] = learned
    return learned if learned.schema else None


def learned_cache_clear() -> None:
    """Forget the models kept in this process (tests)."""
    with _lock:
        _cache.clear()
