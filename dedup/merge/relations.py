"""Every row that belongs to a record, found through the model meta, and how it moves to the survivor and back.

Three kinds of relation are found, none by a hand list:
- ``fk``: a foreign key of any model pointing at the record (orders, deals, leads, a company's customers);
- ``generic``: content_type + object_id rows of any model with a GenericForeignKey (notes, tasks, calls,
  emails, SMS, chat messages, attachments, phones, emails, messenger handles);
- ``m2m``: the rows of a many-to-many through table (tags), on either side.

Each moves with one UPDATE per relation, whatever the number of rows. Multi-valued things are united: the
phones, emails and handles duplicate control reads (the relations its MatchFields prefetch) and many-to-many
links keep one row per distinct normalised value, the survivor's first; the others are deleted, and kept in
the snapshot so undo can recreate them.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.apps import apps
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRel, GenericRelation
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils.translation import gettext_lazy, ngettext_lazy

from dedup import registry
from dedup.db import batches
from dedup.engine import normalize

from .errors import MergeError
from .fields import MERGED_INTO_FIELD, dump_row, load_row

# Apps whose rows are not moved: duplicate control's own tables. The match-key index re-keys the records
# itself when told (records_bulk_saved); merge jobs, notifications, rules and "not a duplicate" pairs are
# history about the records, not data of them.
NOT_MOVED_APPS = frozenset({"dedup"})

# Booleans a record's rows may carry only once besides those a conditional unique constraint protects
# (a pinned note): the primary phone/email/handle. The survivor keeps its own; the absorbed rows lose theirs.
CONVENTIONAL_FLAGS = ("is_primary",)

# Ids per statement when rows are addressed by id (undo, duplicates): far below SQLite's 32,766 and
# PostgreSQL's 65,535 parameters per statement, large enough that 10,000 rows take two statements.
ID_BATCH = 5000

@dataclass(frozen=True)
class Relation:
    """Rows of ``model`` that belong to a record through the ``owner`` column."""

    kind: str  # "fk", "generic" or "m2m"
    model: type[models.Model]  # the model whose rows move (m2m: the through model)
    owner: str  # attname of the column pointing at the record
    content_type: str = ""  # generic: attname of the content type column
    other: str = ""  # m2m: attname of the other side; links are united on it
    identity: Callable[[models.Model], frozenset] | None = None  # united rows: the values a row carries
    flags: tuple[str, ...] = ()  # booleans at most one row of a record may carry
    one_to_one: bool = False

    @property
    def key(self) -> str:
        return f"{self.model._meta.label_lower}.{self.owner}"

    @property
    def united(self) -> bool:
        return self.identity is not None or bool(self.other)


# --- Discovery ----------------------------------------------------------------------------------------------


class _OneRow:
    """A stand-in for a record that has exactly one related row: lets a MatchField reader read a single row."""

    class _Rows:
        def __init__(self, rows):
            self._rows = rows

        def all(self):
            return self._rows

    def __init__(self, relation_name: str, row: models.Model):
        self._relation_name = relation_name
        self._row = row

    def __getattr__(self, name):
        if name == self._relation_name:
            return self._Rows([self._row])
        raise AttributeError(name)


def _identity_reader(match_field: registry.MatchField, relation_name: str) -> Callable[[models.Model], frozenset]:
    """Return row -> the normalised values the registry's reader finds in that row ("+79123456789")."""
    def identity(row: models.Model) -> frozenset:
        values = set()
        for raw in match_field.read(_OneRow(relation_name, row)):
            key = normalize.kind_key(match_field.kind, raw) or normalize.text_key(raw)
            if key:
                values.add(key)
        return frozenset(values)

    return identity


def _contact_readers() -> dict[type[models.Model], Callable]:
    """Return {row model: identity} for every generic relation a registered MatchField reads (phones, emails,
    messenger handles), from whichever entity registers the reader."""
    readers: dict[type[models.Model], Callable] = {}
    for spec in registry.all_specs():
        for match_field in spec.fields:
            if len(match_field.prefetch) != 1 or "__" in match_field.prefetch[0]:
                continue
            relation_name = match_field.prefetch[0]
            try:
                model_field = spec.model._meta.get_field(relation_name)
            except FieldDoesNotExist:
                continue
            if isinstance(model_field, GenericRelation):
                readers.setdefault(model_field.related_model, _identity_reader(match_field, relation_name))
    return readers


def _united_generic_models(model: type[models.Model]) -> dict[type[models.Model], Callable]:
    """Return {row model: identity} for this model's multi-valued generic relations (phones, emails...)."""
    readers = _contact_readers()
    return {
        model_field.related_model: readers[model_field.related_model]
        for model_field in model._meta.private_fields
        if isinstance(model_field, GenericRelation) and model_field.related_model in readers
    }


def _flags(row_model: type[models.Model], owner_names: set[str]) -> tuple[str, ...]:
    """Return the booleans a record may carry on only one of its rows."""
    flags = []
    for constraint in row_model._meta.constraints:
        if not isinstance(constraint, models.UniqueConstraint) or set(constraint.fields) != owner_names:
            continue
        # Only the simple form Q(flag=True), as in "one pinned note per record".
        condition = constraint.condition
        if isinstance(condition, Q) and not condition.negated and len(condition.children) == 1:
            child = condition.children[0]
            if isinstance(child, tuple) and child[1] is True and "__" not in child[0]:
                flags.append(row_model._meta.get_field(child[0]).attname)
    for name in CONVENTIONAL_FLAGS:
        try:
            model_field = row_model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(model_field, models.BooleanField) and model_field.attname not in flags:
            flags.append(model_field.attname)
    return tuple(flags)


def _m2m_relations(model: type[models.Model]) -> list[Relation]:
    result = []
    for model_field in model._meta.get_fields(include_hidden=True):
        if not model_field.many_to_many or isinstance(model_field, GenericRelation):
            continue
        if model_field.concrete:  # a ManyToManyField on this model
            forward = model_field
            owner_name, other_name = forward.m2m_field_name(), forward.m2m_reverse_field_name()
        else:  # another model's ManyToManyField pointing here
            forward = model_field.field
            owner_name, other_name = forward.m2m_reverse_field_name(), forward.m2m_field_name()
        through = forward.remote_field.through
        if through._meta.app_label in NOT_MOVED_APPS:
            continue
        result.append(
            Relation(
                kind="m2m",
                model=through,
                owner=through._meta.get_field(owner_name).attname,
                other=through._meta.get_field(other_name).attname,
            )
        )
    return result


def _fk_relations(model: type[models.Model], through_models: set) -> list[Relation]:
    result = []
    for rel in model._meta.get_fields(include_hidden=True):
        if not rel.auto_created or rel.concrete or not (rel.one_to_many or rel.one_to_one):
            continue
        if isinstance(rel, GenericRel):
            continue
        remote = rel.field
        row_model = remote.model._meta.concrete_model
        if row_model in through_models or row_model._meta.app_label in NOT_MOVED_APPS:
            continue
        if not remote.concrete or getattr(remote.remote_field, "parent_link", False):
            continue
        # The archive's own pointer is lineage, not ownership: a record absorbed earlier into an absorbed
        # record keeps pointing at it, and its page follows the chain to the final survivor.
        if row_model is model and remote.name == MERGED_INTO_FIELD:
            continue
        result.append(
            Relation(
                kind="fk",
                model=row_model,
                owner=remote.attname,
                flags=_flags(row_model, {remote.name}),
                one_to_one=remote.one_to_one,
            )
        )
    return result


def _generic_relations(model: type[models.Model]) -> list[Relation]:
    united = _united_generic_models(model)
    result = []
    for row_model in apps.get_models():
        if row_model._meta.app_label in NOT_MOVED_APPS or row_model._meta.proxy:
            continue
        for private in row_model._meta.private_fields:
            if not isinstance(private, GenericForeignKey):
                continue
            content_type = row_model._meta.get_field(private.ct_field)
            object_id = row_model._meta.get_field(private.fk_field)
            result.append(
                Relation(
                    kind="generic",
                    model=row_model,
                    owner=object_id.attname,
                    content_type=content_type.attname,
                    identity=united.get(row_model),
                    flags=_flags(row_model, {content_type.name, object_id.name}),
                )
            )
    return result


def relations_for(model: type[models.Model]) -> tuple[Relation, ...]:
    """Return every relation whose rows belong to records of ``model``."""
    return _relations_for(model._meta.concrete_model, registry.version)


# Derived from the models' _meta and the registry's readers (kind 2 of the caching rule in docs/ARCHITECTURE.md):
# the registry's version is part of the key, so registering an entity is seen; models are a finite set.
@functools.cache
def _relations_for(model: type[models.Model], _registry_version: int) -> tuple[Relation, ...]:
    m2m = _m2m_relations(model)
    through_models = {relation.model for relation in m2m}
    found = [*_fk_relations(model, through_models), *_generic_relations(model), *m2m]
    unique: dict[str, Relation] = {}
    for relation in found:
        unique.setdefault(relation.key, relation)
    return tuple(unique.values())


# --- Moving -------------------------------------------------------------------------------------------------


def _owner_value(relation: Relation, pk):
    """Return a record's pk as the owner column stores it (a text object_id holds "12")."""
    return relation.model._meta.get_field(_field_name(relation.model, relation.owner)).to_python(pk)


def _field_name(model: type[models.Model], attname: str) -> str:
    for model_field in model._meta.concrete_fields:
        if model_field.attname == attname:
            return model_field.name
    return attname


def _scope(relation: Relation, content_type_id: int) -> dict:
    return {relation.content_type: content_type_id} if relation.kind == "generic" else {}


def relation_has_rows(relation: Relation, *, owner_pks: Sequence, content_type_id: int) -> bool:
    """Return whether any of these records has rows in the relation (one EXISTS query)."""
    owners = [_owner_value(relation, pk) for pk in owner_pks]
    scope = _scope(relation, content_type_id)
    return relation.model._base_manager.filter(**scope, **{f"{relation.owner}__in": owners}).exists()


def relation_move(
    relation: Relation, *, survivor_pk, absorbed_pks: Sequence, content_type_id: int
) -> dict | None:
    """Move the absorbed records' rows of one relation to the survivor; return what undo needs, or None.

    Queries: one SELECT, then (only when there is something to do) one UPDATE that moves the rows, plus one
    DELETE for duplicates and one UPDATE for cleared flags; never one per row.
    """
    manager = relation.model._base_manager
    scope = _scope(relation, content_type_id)
    survivor_key = _owner_value(relation, survivor_pk)
    absorbed_keys = [_owner_value(relation, pk) for pk in absorbed_pks]
    needs_survivor_rows = relation.united or relation.one_to_one
    owners = absorbed_keys + ([survivor_key] if needs_survivor_rows else [])
    queryset = manager.filter(**scope, **{f"{relation.owner}__in": owners})
    if relation.identity is not None:
        rows = list(queryset.order_by("pk"))
        read = getattr
    else:
        columns = ["pk", relation.owner, *relation.flags] + ([relation.other] if relation.other else [])
        if relation.other:  # m2m links are small: keep every column so a removed duplicate can be recreated
            columns = list(dict.fromkeys(columns + [f.attname for f in relation.model._meta.concrete_fields]))
        rows = list(queryset.order_by("pk").values(*columns))
        read = dict.__getitem__
    if not rows:
        return None

    position = {key: index for index, key in enumerate(absorbed_keys)}
    rows.sort(key=lambda row: position.get(read(row, relation.owner), -1))

    kept: set = set()
    moved: dict[str, list] = {}
    removed: list = []
    cleared: dict[str, list] = {}
    survivor_has_one = False
    for row in rows:
        owner = read(row, relation.owner)
        if owner == survivor_key:
            survivor_has_one = True
            kept |= _identity(relation, row, read)
            continue
        if relation.one_to_one and (survivor_has_one or moved):
            continue  # a one-to-one row stays with its archived record when the survivor already has one
        identity = _identity(relation, row, read)
        if identity and identity <= kept:
            removed.append(row)
            continue
        kept |= identity
        moved.setdefault(str(owner), []).append(read(row, "pk"))
        for flag in relation.flags:
            if read(row, flag):
                cleared.setdefault(flag, []).append(read(row, "pk"))

    _delete_rows(relation.model, [read(row, "pk") for row in removed])
    for flag, ids in cleared.items():
        for batch in batches(ids, ID_BATCH):
            manager.filter(pk__in=batch).update(**{flag: False})
    moved_count = 0
    if moved:
        if relation.one_to_one:
            ids = [pk for pks in moved.values() for pk in pks]
            moved_count = manager.filter(pk__in=ids).update(**{relation.owner: survivor_key})
        else:
            # One UPDATE by owner: every row left on the absorbed records is one to move.
            moved_count = manager.filter(**scope, **{f"{relation.owner}__in": absorbed_keys}).update(
                **{relation.owner: survivor_key}
            )
            # A row written or deleted for an absorbed record between the SELECT and the UPDATE (generic rows
            # have no foreign key for the record lock to hold up) would make the snapshot inexact: start over.
            expected = sum(len(ids) for ids in moved.values())
            if moved_count != expected:
                raise MergeError.of(
                    gettext_lazy("The %(rows)s of the merged records changed while they were being merged; try again."),
                    rows=relation.model._meta.verbose_name_plural,
                )
    return {
        "kind": relation.kind,
        "model": relation.model._meta.label_lower,
        "owner": relation.owner,
        "content_type": relation.content_type,
        "other": relation.other,
        "moved": moved,
        "moved_count": moved_count,
        "removed": [dump_row(row) if relation.identity is not None else _plain(row) for row in removed],
        "cleared": cleared,
    }


def _delete_rows(model: type[models.Model], ids: list) -> None:
    """Delete duplicate rows in bulk, like the UPDATEs that move the others: no per-row signals (the index is
    told about the records once, after commit). Rows other rows depend on go through the ORM's collector."""
    manager = model._base_manager
    has_dependents = any(rel.on_delete is not models.DO_NOTHING for rel in model._meta.related_objects)
    for batch in batches(ids, ID_BATCH):
        queryset = manager.filter(pk__in=batch)
        if has_dependents:
            queryset.delete()
        else:
            queryset._raw_delete(manager.db)  # a plain DELETE ... WHERE id IN (...)


def _identity(relation: Relation, row, read) -> frozenset:
    if relation.identity is not None:
        return relation.identity(row)
    if relation.other:
        return frozenset({read(row, relation.other)})
    return frozenset()


def _plain(row: dict) -> dict:
    return {name: value for name, value in row.items() if name != "pk"}


# --- Moving back --------------------------------------------------------------------------------------------


def relation_restore(entry: dict, *, survivor_pk, content_type_id: int) -> None:
    """Put the rows one relation_move moved back on their records, exactly; refuse if any went missing."""
    model = apps.get_model(entry["model"])
    manager = model._base_manager
    owner = entry["owner"]
    owner_field = model._meta.get_field(_field_name(model, owner))
    scope = {entry["content_type"]: content_type_id} if entry["kind"] == "generic" else {}
    survivor_key = owner_field.to_python(survivor_pk)
    # (row id, original owner) pairs; each batch goes back in one UPDATE ... SET owner = CASE id ... END.
    pairs = [(pk, original) for original, ids in entry["moved"].items() for pk in ids]
    expected = len(pairs)
    restored = 0
    for batch in batches(pairs, ID_BATCH // 2):  # every id is in the CASE and in the WHERE
        by_owner: dict = {}
        for pk, original in batch:
            by_owner.setdefault(original, []).append(pk)
        owner_back = Case(
            *[When(pk__in=ids, then=Value(owner_field.to_python(original))) for original, ids in by_owner.items()],
            output_field=owner_field,
        )
        restored += manager.filter(**scope, pk__in=[pk for pk, _ in batch], **{owner: survivor_key}).update(
            **{owner: owner_back}
        )
    if restored != expected:
        missing = expected - restored
        raise MergeError.of(
            ngettext_lazy(
                "%(count)d of the %(rows)s the merge moved was deleted or moved to another record since, so the "
                "merge cannot be undone exactly.",
                "%(count)d of the %(rows)s the merge moved were deleted or moved to another record since, so the "
                "merge cannot be undone exactly.",
                "count",
            ),
            count=missing,
            rows=model._meta.verbose_name_plural,
        )
    for flag, ids in entry["cleared"].items():
        for batch in batches(ids, ID_BATCH):
            manager.filter(pk__in=batch).update(**{flag: True})
    if entry["removed"]:
        manager.bulk_create([load_row(model, row) for row in entry["removed"]])


def moved_summary(entries: Iterable[dict]) -> dict[str, int]:
    """Return {"notes": 12, "orders": 3}: how many rows of each kind a merge moved."""
    summary: dict[str, int] = {}
    for entry in entries:
        count = entry.get("moved_count", 0)
        if not count:
            continue
        model = apps.get_model(entry["model"])
        if entry.get("other"):  # a through table: name the rows by what they link to ("tags")
            model = next(f.related_model for f in model._meta.concrete_fields if f.attname == entry["other"])
        label = str(model._meta.verbose_name_plural)
        summary[label] = summary.get(label, 0) + count
    return summary


