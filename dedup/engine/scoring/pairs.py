"""The match probability and the "why" of the pairs the screens show, from the entity's stored learned model.

The card's list, the compare screen and the review queue already hold the records they show; ``pair_scores``
scores the current record against each of the others with the entity's stored ``ScoringModel`` and returns
{other pk: PairScore}, or None when no model has been learned yet (the screens then show no probability).

Cost per request, whatever the number of records: one query for the model's stamp; the weights are loaded once
per process and version by dedup.engine.scoring.learned (the finder's loader too); plus one query per to-many
relation the entity's fields read (phones, emails...) for records the caller did not prefetch.

The stored model keeps the value frequencies the learning counted (``ScoringModel.frequencies``: per field
the frequent values with their share, the rest rare), so these probabilities apply the same term-frequency
adjustment as the scan: agreeing on a rare surname counts more than on "Ivanov", on a shared switchboard
almost nothing unless the names agree.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext

from dedup import registry
from dedup.engine.scoring import matcher
from dedup.engine.scoring.explain import Reason, gettext_noop
from dedup.engine.scoring.learned import learned_model

BADGE = gettext_noop("%(percent)s%% match")


@dataclass(frozen=True)
class PairScore:
    """One pair's match probability and each field's contribution, strongest evidence first."""

    probability: float
    reasons: tuple[Reason, ...]

    @property
    def percent(self) -> int:
        """The probability in whole percent, rounded down: 0.999 is "99%", never "100%" for a guess."""
        return min(99, math.floor(self.probability * 100))

    def badge(self) -> str:
        return gettext(BADGE) % {"percent": self.percent}

    def why(self) -> list[str]:
        """Each field's contribution in the reader's language."""
        return [reason.text() for reason in self.reasons]

    def why_text(self) -> str:
        return "; ".join(self.why())


def _values(spec: registry.EntitySpec, record: models.Model) -> dict:
    """A record's values per registered field, read as the learning read them (entity.entity_records)."""
    values = {}
    for field in spec.fields:
        try:
            values[field.name] = [value for value in field.read(record) if value]
        except Exception:  # a field that cannot be read is missing, never a failed page
            values[field.name] = []
    return values


def pair_scores(
    entity: str, record: models.Model, candidates: Sequence[models.Model]
) -> dict[int, PairScore] | None:
    """Return {candidate pk: PairScore} of the record against each candidate, or None without a learned model.

    The records are the caller's (already loaded); the to-many relations the fields read are prefetched here
    in one query each when the caller has not done it.
    """
    spec = registry.get(entity)
    loaded = learned_model(spec)
    if loaded is None:
        return None
    others = [candidate for candidate in candidates if candidate is not None and candidate.pk != record.pk]
    if not others:
        return {}
    rows = [record, *others]
    if spec.prefetch:
        models.prefetch_related_objects(rows, *spec.prefetch)
    read = matcher.read_records([_values(spec, row) for row in rows], list(loaded.schema))
    scores = {}
    for position, other in enumerate(others, start=1):
        probability, reasons = matcher.explain(loaded.model, read, 0, position)
        scores[other.pk] = PairScore(probability, tuple(reasons))
    return scores
