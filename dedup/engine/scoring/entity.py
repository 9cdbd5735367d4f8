"""Scored matching of a registered entity: read its records through the registry, learn, store, find groups."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.db import models

from dedup import registry
from dedup.engine import match_settings
from dedup.engine.scoring import base_read, matcher, store
from dedup.engine.scoring.model import Model
from dedup.engine.scoring.schema import entity_schema, scored_fields
from dedup.models import ScoringModel

# Records read per query.
READ_CHUNK = 2000


@dataclass
class EntityResult:
    """Groups of one entity's records (primary keys), the read records and the learned model."""

    groups: list[list[int]]
    pks: list[int]
    records: matcher.Records
    result: matcher.Result
    stored: ScoringModel


def entity_records(spec: registry.EntitySpec, queryset: models.QuerySet | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (pk, {field: values}) for the entity's live records, read as the index reads them.

    The whole base (no ``queryset``) is read as the index loads it (dedup.engine.index.load): per chunk of
    primary keys one query for the columns the fields declare and one plain SQL query per contact table, not
    the ORM's whole rows and per-chunk prefetch (a third of the time at 100,000 customers).
    """
    fields = scored_fields(spec)
    if queryset is None and len(fields) == len(spec.fields):
        # (custom fields with a type are read from the record's custom-fields JSON: the ORM path below)
        yield from _entity_records_loaded(spec)
        return
    if queryset is None:
        queryset = spec.model._default_manager.all()
    if spec.archived_attr:
        queryset = queryset.filter(**{spec.archived_attr: False})
    prefetch = sorted({name for field in fields for name in field.prefetch})
    queryset = queryset.order_by("pk").prefetch_related(*prefetch)
    for record in queryset.iterator(chunk_size=READ_CHUNK):
        yield record.pk, _field_values(fields, record)


@dataclass
class LearnedModel:
    """An entity's model learned and stored, with what it was learned from (the scan scores on the same)."""

    pks: list[int]
    records: matcher.Records
    pairs: np.ndarray
    model: Model
    stored: ScoringModel
    timings: dict[str, float]


def scoring_model_learn(*, entity: str) -> LearnedModel:
    """Learn the entity's weights from its own records and store them; nothing is scored or grouped.

    The base is read and blocked once; m and the prior are learned from a bounded sample of the candidate
    pairs (matcher.learn), so learning costs far less than a scan of the whole base.
    """
    spec = registry.get(entity)
    match_settings.refresh()  # the administrator's placeholders and custom field types, as stored now
    schema = entity_schema(spec)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    pks, read = read_entity(spec, schema)
    timings["reading"] = time.perf_counter() - started
    started = time.perf_counter()
    pairs = matcher.candidate_pairs(read)
    timings["blocking"] = time.perf_counter() - started
    started = time.perf_counter()
    model = matcher.learn(read, pairs)
    timings["learning"] = time.perf_counter() - started
    stored = store.scoring_model_save(entity=entity, model=model, records=len(pks), candidate_pairs=len(pairs))
    return LearnedModel(pks=pks, records=read, pairs=pairs, model=model, stored=stored, timings=timings)


def scoring_learn(*, entity: str, threshold: float | None = None) -> EntityResult:
    """Learn the entity's weights from its own records, store them, and return its groups of duplicates, found
    with the learned model on the records and candidate pairs the learning read (nothing read or blocked twice)."""
    learned = scoring_model_learn(entity=entity)
    threshold = threshold or learned.stored.threshold or matcher.DEFAULT_THRESHOLD
    result = matcher.find_groups(learned.records, model=learned.model, threshold=threshold, pairs=learned.pairs)
    result.timings = {**learned.timings, **result.timings}
    groups = [[learned.pks[row] for row in group] for group in result.groups]
    return EntityResult(groups=groups, pks=learned.pks, records=learned.records, result=result,
                        stored=learned.stored)


def read_entity(spec: registry.EntitySpec, schema: list[matcher.FieldSpec]) -> tuple[list[int], matcher.Records]:
    """Return the primary keys and the read records of the entity's whole base, each record read for matching
    as it arrives: the raw values of a million records are never held at once (2.3 GB of dicts at 1,000,000).

    As plain rows (base_read) when the entity's fields allow, else through its model instances."""
    read = base_read.read_base(spec, schema)
    if read is not None:
        return read
    pks: list[int] = []

    def rows() -> Iterator[dict]:
        for pk, values in entity_records(spec):
            pks.append(pk)
            yield values

    read = matcher.read_records(rows(), schema)
    return pks, read


# Primary keys per load_records call: one query per table each, the rows of a chunk held at once.
LOAD_CHUNK = 5000


def _entity_records_loaded(spec: registry.EntitySpec) -> Iterator[tuple[int, dict]]:
    from dedup.engine.index.load import load_records

    queryset = spec.model._default_manager.all()
    if spec.archived_attr:
        queryset = queryset.filter(**{spec.archived_attr: False})
    pks = list(queryset.order_by("pk").values_list("pk", flat=True))
    kinds = {field.name for field in spec.fields}
    for start in range(0, len(pks), LOAD_CHUNK):
        chunk = pks[start:start + LOAD_CHUNK]
        loaded = {record.pk: record for record in load_records(spec, chunk, kinds)}
        for pk in chunk:
            record = loaded.get(pk)
            if record is None:  # deleted meanwhile
                continue
            yield pk, _field_values(spec.fields, record)


def _field_values(fields: list[registry.MatchField], record: models.Model) -> dict:
    values = {}
    for field in fields:
        try:
            values[field.name] = [value for value in field.read(record) if value]
        except Exception:  # a field that cannot be read is missing, never a failed scan
            values[field.name] = []
    return values
