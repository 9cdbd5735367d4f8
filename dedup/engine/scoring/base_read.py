"""Read an entity's whole base for matching: one streamed query per table, values coded as they arrive.

At 1,000,000 customers, building a model instance for every record, phone and email, calling each field's
reader on it, and parsing every stored phone again with libphonenumber was most of the 80 CPU seconds the
learning and the scan spent reading. Here:
- the records' own columns, with the columns of their forward foreign keys joined (a customer's company
  name), come from one query in primary-key order, and each generic relation's rows (phones, emails) from
  one query in owner order; all are streamed (``iterator``) and merged by owner id, so no chunk of a million
  rows is held;
- a field's reader (``MatchField.read``) still says what its values are: it is called on a stand-in record
  holding only the columns the field declares (``MatchField.columns``, the same contract the index's loader
  relies on), once per distinct combination of those columns when the field reads only the record's own and
  joined columns (a name, a company: shared by thousands of records), and once per record when it reads
  related rows (phones, emails: mostly the record's own);
- a field that names the column holding its values (``MatchField.plain_column``: an email's address, a
  phone's stored E.164 form) is read straight from its rows, no stand-in and no reader;
- a phone field whose model stores the E.164 form (``MatchField.read_keys``) is read from it, as the index
  reads it: a number that could not be normalised when saved is missing, and a stored key is not parsed again;
- each distinct raw value is prepared once and each record keeps a code (coding.ColumnCoder).

Entities this cannot read (a field without declared columns, a typed custom field read from JSON, a path of
another shape) go through ``entity.entity_records`` as before; ``None`` says so.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models, router, transaction

from dedup import db, registry
from dedup.engine.scoring import coding, matcher
from dedup.engine.scoring import comparisons as c

# Rows fetched per round trip of each streamed query.
FETCH_SIZE = 10_000


@dataclass
class _Relation:
    """A generic relation read by some fields: its rows' declared columns, per owner."""

    name: str
    model: type[models.Model]
    owner_field: str
    content_type_field: str
    content_type: ContentType
    attnames: list[str]


@dataclass
class _Join:
    """A forward foreign key read by some fields: its id's position in the row, and its target's columns."""

    field: models.ForeignKey
    id_position: int
    positions: list[int] = field(default_factory=list)
    attnames: list[str] = field(default_factory=list)


@dataclass
class _Field:
    spec: matcher.FieldSpec
    match: registry.MatchField
    stored: bool  # read from the stored keys (read_keys)
    own: list[int]  # positions in the record's row: its own columns and joined ids and columns
    relations: list[int]  # indexes into the plan's relations
    # (relation index, column index in its rows) of MatchField.plain_column: values read without the reader.
    plain: tuple[int, int] | None = None


@dataclass
class _Plan:
    model: type[models.Model]
    names: list[str]  # values_list names of the record's row after "pk"
    attnames: list[str]  # the record's own attnames, positions 1..
    own_positions: list[int]
    joins: list[_Join]
    relations: list[_Relation]
    fields: list[_Field]


def read_base(spec: registry.EntitySpec, schema: list[matcher.FieldSpec]) -> tuple[list[int], matcher.Records] | None:
    """Return the primary keys and the read records of the entity's live records, or None when its fields
    cannot be read as plain rows (the caller reads them through the model instances)."""
    plan = _plan(spec, schema)
    if plan is None:
        return None
    coders = [coding.ColumnCoder(item.spec.type, stored=item.stored) for item in plan.fields]
    using = router.db_for_read(spec.model)
    # Server-side cursors stream inside a transaction; the cycle collector is held off (as in read_records).
    with transaction.atomic(using=using), matcher.no_cycle_collection():
        pks, codes = _read_records(spec, plan, coders, using)
        # Each column is coded once read, its reading cache dropped before the next is read.
        columns = [None if item.plain else coder.column(column) for item, coder, column in zip(plan.fields, coders, codes)]
        rows = np.asarray(pks, dtype=np.int64)
        for position, (item, coder) in enumerate(zip(plan.fields, coders)):
            if item.plain is not None:
                relation, column = item.plain
                columns[position] = coder.column(_plain_codes(plan.relations[relation], column, coder, rows, using))
    return pks, matcher.Records.from_coded(schema, columns)


def _read_records(spec: registry.EntitySpec, plan: _Plan, coders: list[coding.ColumnCoder],
                  using: str) -> tuple[list[int], list]:
    """Read the records' rows (and the related rows of the fields read by their reader): their primary keys
    and, per field not read from a plain column, each record's code."""
    read = [position for position, item in enumerate(plan.fields) if item.plain is None]
    merged = {index for position in read for index in plan.fields[position].relations}
    codes: list = [array("i") for _item in plan.fields]
    # Per field read here: its relations, the key of its own columns, its memo of key -> code, its codes.
    steps = [(plan.fields[position], coders[position], tuple(plan.fields[position].relations),
              itemgetter(*plan.fields[position].own) if plan.fields[position].own else _no_key, {},
              codes[position].append) for position in read]
    builders = _Builders(plan, using)
    queryset = spec.model._default_manager.using(using).all()
    if spec.archived_attr:
        queryset = queryset.filter(**{spec.archived_attr: False})
    rows = queryset.order_by("pk").values_list("pk", *plan.names).iterator(chunk_size=FETCH_SIZE)
    nothing: list[tuple] = []
    takers = [_Owned(_relation_rows(relation, relation.attnames, using)).take if index in merged
              else (lambda _owner: nothing) for index, relation in enumerate(plan.relations)]
    pks: list[int] = []
    for row in rows:
        pk = row[0]
        pks.append(pk)
        related = [take(pk) for take in takers]
        record = None  # the stand-in, built on the first field that needs its reader
        for item, coder, relations, key_of, memo, append in steps:
            if relations and _any_rows(related, relations):
                if record is None:
                    record = builders.record(row, related)
                append(coder.code(_values(item, record)))
                continue
            key = key_of(row)
            code = memo.get(key)
            if code is None:
                if record is None:
                    record = builders.record(row, related)
                code = memo[key] = coder.code(_values(item, record))
            append(code)
    return pks, codes


def _plain_codes(relation: _Relation, column: int, coder: coding.ColumnCoder, pks: np.ndarray,
                 using: str) -> np.ndarray:
    """Return each record's code of a field read from one column of a relation's rows: the rows streamed in
    owner order, each owner's values coded, then placed by the owner's row (rows of owners not read, such as
    archived records, are left out)."""
    owners = array("q")
    found = array("i")
    current, values = None, []
    for owner, value in _relation_rows(relation, [relation.attnames[column]], using):
        if owner != current:
            if current is not None:
                owners.append(current)
                found.append(coder.code(values))
            current, values = owner, []
        if value:
            values.append(value)
    if current is not None:
        owners.append(current)
        found.append(coder.code(values))
    codes = np.full(len(pks), coder.code([]), dtype=np.int32)
    owner_ids = np.asarray(owners, dtype=np.int64)
    places = np.searchsorted(pks, owner_ids)
    known = places < len(pks)
    known[known] = pks[places[known]] == owner_ids[known]
    codes[places[known]] = np.asarray(found, dtype=np.int32)[known]
    return codes


def _no_key(_row: tuple) -> tuple:
    return ()


def _any_rows(related: list[list[tuple]], relations: tuple[int, ...]) -> bool:
    for index in relations:
        if related[index]:
            return True
    return False


def _values(item: _Field, record: models.Model) -> list:
    """The field's raw values, as entity.entity_records reads them (a field that cannot be read is missing)."""
    try:
        if item.stored:
            return [key for key, _typed in item.match.read_keys(record) if key]
        return [value for value in item.match.read(record) if value]
    except Exception:
        return []


class _Builders:
    """Stand-in records: a model instance holding the row's own columns, its joined rows and its related rows
    (only the columns the fields declare; any other is deferred, as the index's loader leaves it)."""

    def __init__(self, plan: _Plan, using: str):
        self.plan = plan
        model = plan.model
        self._record = db.instance_builder(model, [model._meta.pk.attname, *plan.attnames], using=using)
        self._joins = [db.instance_builder(join.field.related_model, [join.field.target_field.attname, *join.attnames],
                                           using=using) for join in plan.joins]
        self._relations = [db.instance_builder(relation.model, relation.attnames, using=using)
                           for relation in plan.relations]

    def record(self, row: tuple, related: list[list[tuple]]) -> models.Model:
        plan = self.plan
        record = self._record([row[0], *(row[position] for position in plan.own_positions)])
        for join, build in zip(plan.joins, self._joins):
            target_id = row[join.id_position]
            target = None if target_id is None else build([target_id, *(row[position] for position in join.positions)])
            join.field.set_cached_value(record, target)
        if plan.relations:
            registry.attach_related(record, {
                relation.name: [build(values) for values in rows]
                for relation, build, rows in zip(plan.relations, self._relations, related)})
        return record


class _Owned:
    """A relation's rows, ordered by owner, taken owner by owner as the records (ordered alike) go by."""

    def __init__(self, rows: Iterator[tuple]):
        self._rows = rows
        self._next = next(rows, None)

    def take(self, owner: int) -> list[tuple]:
        found = []
        following = self._next
        while following is not None and following[0] <= owner:
            if following[0] == owner:
                found.append(following[1:])
            following = next(self._rows, None)
        self._next = following
        return found


def _relation_rows(relation: _Relation, attnames: list[str], using: str) -> Iterator[tuple]:
    """Stream the relation's rows of the entity's records, (owner id, *these columns), in owner order."""
    return (relation.model._base_manager.using(using)
            .filter(**{relation.content_type_field: relation.content_type})
            .order_by(relation.owner_field, "pk")
            .values_list(relation.owner_field, *attnames)
            .iterator(chunk_size=FETCH_SIZE))


def _plan(spec: registry.EntitySpec, schema: list[matcher.FieldSpec]) -> _Plan | None:
    """Return how to read the schema's fields as plain rows, or None when one of them cannot be."""
    model = spec.model
    if not isinstance(model._meta.pk, models.IntegerField):  # rows are merged by id, in Python's order
        return None
    plan = _Plan(model, [], [], [], [], [], [])
    position_of: dict[str, int] = {}  # values_list name -> position in the row

    def position(name: str) -> int:
        if name not in position_of:
            plan.names.append(name)
            position_of[name] = len(plan.names)
        return position_of[name]

    for field_spec in schema:
        if field_spec.name.startswith(registry.CUSTOM_PREFIX) or not spec.has_field(field_spec.name):
            return None
        match = spec.field(field_spec.name)
        if match.columns is None:
            return None
        item = _Field(field_spec, match, field_spec.type == c.PHONE and match.read_keys is not None, [], [])
        for path in match.columns:
            head, _sep, rest = path.partition("__")
            target = _model_field(model, head)
            if target is None or "__" in rest:
                return None
            if isinstance(target, GenericRelation):
                if not rest or _model_field(target.related_model, rest) is None:
                    return None
                item.relations.append(_relation(plan, target, _model_field(target.related_model, rest).attname))
            elif not rest and target.concrete and not target.is_relation:
                item.own.append(position(head))
                if target.attname not in plan.attnames:
                    plan.attnames.append(target.attname)
                    plan.own_positions.append(position(head))
            elif target.many_to_one and target.concrete and rest and _model_field(target.related_model, rest):
                join = _join(plan, target, position(head))
                item.own.append(join.id_position)
                column = position(path)
                item.own.append(column)
                attname = _model_field(target.related_model, rest).attname
                if attname not in join.attnames:
                    join.attnames.append(attname)
                    join.positions.append(column)
            else:
                return None
        if match.plain_column in match.columns and not item.own and len(set(item.relations)) == 1:
            relation = plan.relations[item.relations[0]]
            attname = _model_field(relation.model, match.plain_column.partition("__")[2]).attname
            item.plain = (item.relations[0], relation.attnames.index(attname))
        item.relations = sorted(set(item.relations))
        item.own = list(dict.fromkeys(item.own))
        plan.fields.append(item)
    return plan


def _join(plan: _Plan, foreign_key: models.ForeignKey, id_position: int) -> _Join:
    for join in plan.joins:
        if join.field is foreign_key:
            return join
    join = _Join(foreign_key, id_position)
    plan.joins.append(join)
    plan.attnames.append(foreign_key.attname)
    plan.own_positions.append(id_position)
    return join


def _relation(plan: _Plan, relation: GenericRelation, attname: str) -> int:
    for index, known in enumerate(plan.relations):
        if known.name == relation.name:
            if attname not in known.attnames:
                known.attnames.append(attname)
            return index
    content_type = ContentType.objects.get_for_model(plan.model, for_concrete_model=relation.for_concrete_model)
    plan.relations.append(_Relation(relation.name, relation.related_model, relation.object_id_field_name,
                                    relation.content_type_field_name, content_type, [attname]))
    return len(plan.relations) - 1


def _model_field(model: type[models.Model], name: str):
    try:
        return model._meta.get_field(name)
    except Exception:
        return None
