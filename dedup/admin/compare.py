"""Read what the managers' merge screens show: the duplicate list behind the badge and the compare table."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.admin.utils import display_for_field, model_ngettext
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Count, Value
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup.engine import normalize
from dedup.engine.scoring.pairs import PairScore, pair_scores
from dedup.merge.fields import KEY_SEPARATOR, field_label, is_empty, mergeable_fields
from dedup.records import record_label
from dedup.registry import EntitySpec, for_model

EMPTY_DISPLAY = "\u2014"

class MergeSelectionError(ValueError):
    """The records asked for cannot be compared (unknown ids, fewer than two, archived, mixed models)."""


# --- Records -----------------------------------------------------------------------------------------------


def _spec_for(model: type[models.Model]) -> EntitySpec:
    spec = for_model(model)
    if spec is None:
        raise MergeSelectionError(_("%(model)s does not take part in duplicate control.") % {
            "model": capfirst(model._meta.verbose_name_plural)
        })
    return spec


def _fk_names(model: type[models.Model], names: Iterable[str]) -> list[str]:
    result = []
    for name in names:
        try:
            model_field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if model_field.many_to_one or model_field.one_to_one:
            if model_field.concrete:
                result.append(name)
    return result


def load_records(model: type[models.Model], pks: Sequence[int]) -> list[models.Model]:
    """Return the live (not archived) records with these ids, in the order given; refuse anything else."""
    unique_pks = list(dict.fromkeys(pks))
    if len(unique_pks) < 2:
        raise MergeSelectionError(_("Choose at least two records to compare."))
    spec = _spec_for(model)
    fk_names = _fk_names(model, [f.name for f in mergeable_fields(model)] + list(spec.summary_fields))
    by_pk = model._default_manager.select_related(*fk_names).prefetch_related(*summary_prefetch(spec)).in_bulk(
        unique_pks
    )
    missing = [str(pk) for pk in unique_pks if pk not in by_pk]
    if missing:
        raise MergeSelectionError(
            ngettext(
                "Record %(ids)s no longer exists.", "Records %(ids)s no longer exist.", len(missing)
            ) % {"ids": ", ".join(missing)}
        )
    archived = [record_label(by_pk[pk]) for pk in unique_pks if getattr(by_pk[pk], "is_archived", False)]
    if archived:
        raise MergeSelectionError(
            _("%(records)s already merged into another record; reopen the list of duplicates.")
            % {"records": ", ".join(archived)}
        )
    return [by_pk[pk] for pk in unique_pks]


# --- Related counts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """A relation of an entity whose rows move to the survivor on merge, and how to count them."""

    name: str
    model: type[models.Model]

    def label(self, count: int) -> str:
        return model_ngettext(self.model, count)


def _relation_model(model: type[models.Model], name: str) -> type[models.Model] | None:
    try:
        model_field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return model_field.related_model


def relations(spec: EntitySpec) -> list[Relation]:
    """Return the relations listed in the entity's related_counts that exist on its model."""
    result = []
    for name in spec.related_counts:
        related_model = _relation_model(spec.model, name)
        if related_model is not None:
            result.append(Relation(name=name, model=related_model))
    return result


def _counts_by_owner(model: type[models.Model], name: str, pks: list[int], position: int):
    """The related rows of each record for one relation, grouped: (owner pk, rows, position) rows, or None."""
    model_field = model._meta.get_field(name)
    if isinstance(model_field, GenericRelation):
        related = model_field.related_model
        content_type = ContentType.objects.get_for_model(model)
        owner = model_field.object_id_field_name
        rows = related._default_manager.filter(
            **{model_field.content_type_field_name: content_type, f"{owner}__in": pks}
        )
    elif model_field.many_to_many and model_field.concrete:
        related = model_field.remote_field.through
        owner = f"{model_field.m2m_field_name()}_id"
        rows = related._default_manager.filter(**{f"{owner}__in": pks})
    elif model_field.one_to_many:
        related = model_field.related_model
        owner = model_field.field.attname
        rows = related._default_manager.filter(**{f"{owner}__in": pks})
    else:
        return None
    return (
        rows.order_by()
        .values(owner)
        .annotate(n=Count("pk"), relation=Value(position, output_field=models.IntegerField()))
        .values_list(owner, "n", "relation")
    )


def related_counts(model: type[models.Model], pks: Iterable[int]) -> dict[int, dict[str, int]]:
    """Return {pk: {relation name: rows}} for the entity's related_counts, in one query (a UNION ALL of one
    grouped count per relation: a customer has ten relations, and the compare screen and the list behind the
    badge paid ten queries for them)."""
    pks = list(pks)
    counts: dict[int, dict[str, int]] = {pk: {} for pk in pks}
    if not pks:
        return counts
    names = [relation.name for relation in relations(_spec_for(model))]
    for pk in pks:
        counts[pk] = dict.fromkeys(names, 0)
    parts = [part for position, name in enumerate(names)
             if (part := _counts_by_owner(model, name, pks, position)) is not None]
    if not parts:
        return counts
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    for owner_pk, number, position in rows:
        owner_pk = int(owner_pk)
        if owner_pk in counts:
            counts[owner_pk][names[position]] = number
    return counts


@dataclass(frozen=True)
class RelatedCount:
    name: str
    count: int
    label: str


def _related_list(spec: EntitySpec, counts: dict[str, int]) -> list[RelatedCount]:
    """The relations a record has rows in, with their counts ("3 notes")."""
    return [
        RelatedCount(name=r.name, count=counts[r.name], label=r.label(counts[r.name]))
        for r in relations(spec)
        if counts.get(r.name)
    ]


# --- The list behind the badge -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyField:
    label: str
    value: str


@dataclass
class DuplicateRow:
    """One record in the list behind the badge."""

    record: models.Model
    is_current: bool
    key_fields: list[KeyField]
    reasons: list[str]
    related: list[RelatedCount]
    score: float | None = None
    # The learned model's match probability and why against the current record (None: no model learned yet).
    match: PairScore | None = None

    @property
    def pk(self):
        return self.record.pk

    @property
    def label(self) -> str:
        return record_label(self.record)


def _summary_match_field(model: type[models.Model], spec: EntitySpec, name: str):
    """Return the registered MatchField a summary name shows (an order's items: a relation, no column), or None
    when the name is a column of the model."""
    try:
        if model._meta.get_field(name).concrete:
            return None
    except FieldDoesNotExist:
        pass
    return next((match_field for match_field in spec.fields if match_field.name == name), None)


def summary_prefetch(spec: EntitySpec) -> list[str]:
    """Return the relations the summary fields read through their MatchField (an order's items), for one
    prefetch per list rather than a query per record."""
    paths = set()
    for name in spec.summary_fields:
        match_field = _summary_match_field(spec.model, spec, name)
        if match_field is not None:
            paths.update(match_field.prefetch)
    return sorted(paths)


def summary_queryset(spec: EntitySpec, queryset: models.QuerySet) -> models.QuerySet:
    """Return the queryset loading what the summary fields show: their foreign keys joined, relations prefetched."""
    return queryset.select_related(*_fk_names(spec.model, spec.summary_fields)).prefetch_related(
        *summary_prefetch(spec)
    )


def _field_label(model: type[models.Model], spec: EntitySpec, name: str) -> str:
    match_field = _summary_match_field(model, spec, name)
    if match_field is not None:
        return capfirst(match_field.label)
    try:
        return capfirst(model._meta.get_field(name).verbose_name)
    except FieldDoesNotExist:
        pass
    return capfirst(name.replace("_", " "))


def _match_field_display(match_field, record: models.Model) -> str:
    """Return a MatchField's values as typed ("Shoes ×1, Socks ×3"), from its stored keys' values when it has them."""
    try:
        if match_field.read_keys is not None:
            values = [str(shown) for _key, shown in match_field.read_keys(record) or [] if shown]
        else:
            values = [str(value) for value in match_field.read(record) or [] if value not in (None, "")]
    except Exception:  # a summary never takes a screen down
        values = []
    return ", ".join(values) or EMPTY_DISPLAY


def _display(model: type[models.Model], record: models.Model, name: str, spec: EntitySpec | None = None) -> str:
    match_field = _summary_match_field(model, spec, name) if spec is not None else None
    if match_field is not None:
        return _match_field_display(match_field, record)
    try:
        model_field = model._meta.get_field(name)
    except FieldDoesNotExist:
        value = getattr(record, name, None)
        return str(value) if value not in (None, "") else EMPTY_DISPLAY
    value = getattr(record, model_field.name)
    if is_empty(value):
        return EMPTY_DISPLAY
    return display_value(model_field, value)


def display_value(model_field: models.Field, value) -> str:
    """Return a field's value as plain text: choices by label, booleans as Yes/No, related records by name."""
    if is_empty(value):
        return EMPTY_DISPLAY
    if isinstance(model_field, models.BooleanField):
        return _("Yes") if value else _("No")
    return str(display_for_field(value, model_field, EMPTY_DISPLAY))


def key_fields(record: models.Model, spec: EntitySpec | None = None) -> list[KeyField]:
    """Return the record's summary fields as (label, shown value) pairs."""
    spec = spec or _spec_for(type(record))
    model = type(record)
    return [
        KeyField(_field_label(model, spec, name), _display(model, record, name, spec)) for name in spec.summary_fields
    ]


def duplicate_rows(record: models.Model, matches: Sequence) -> list[DuplicateRow]:
    """Return the list behind the badge: the current record first, then each match with its reasons.

    ``matches`` are the finder's Match objects (``.record``, ``.reasons``, ``.score``). The records are
    re-read in one query with their summary fields' relations, and related counts take one query per
    relation, so the list costs the same for 2 or 50 matches; each match also gets the learned model's probability
    and why (``dedup.engine.scoring.pairs``, a constant number of queries too).
    """
    model = type(record)
    spec = _spec_for(model)
    pks = [record.pk] + [match.record.pk for match in matches]
    fk_names = _fk_names(model, spec.summary_fields)
    fresh = model._default_manager.select_related(*fk_names).prefetch_related(*summary_prefetch(spec)).in_bulk(pks)
    counts = related_counts(model, pks)
    current = fresh.get(record.pk, record)
    rows = [
        DuplicateRow(
            record=current,
            is_current=True,
            key_fields=key_fields(current, spec),
            reasons=[],
            related=_related_list(spec, counts[record.pk]),
        )
    ]
    for match in matches:
        matched = fresh.get(match.record.pk)
        if matched is None:  # deleted between the finder's query and ours
            continue
        rows.append(
            DuplicateRow(
                record=matched,
                is_current=False,
                key_fields=key_fields(matched, spec),
                reasons=[str(reason) for reason in match.reasons],
                related=_related_list(spec, counts[matched.pk]),
                score=getattr(match, "score", None),
            )
        )
    scores = pair_scores(spec.key, current, [row.record for row in rows[1:]]) or {}
    for row in rows[1:]:
        row.match = scores.get(row.pk)
    return rows


# --- The compare table -------------------------------------------------------------------------------------


def _cannot_move(model: type[models.Model], model_field: models.Field) -> bool:
    """A unique, non-nullable value (an order number) cannot be given to another record: it stays put."""
    if model_field.null:
        return False
    if model_field.unique:
        return True
    return any(
        isinstance(constraint, models.UniqueConstraint)
        and tuple(constraint.fields) == (model_field.name,)
        and constraint.condition is None
        for constraint in model._meta.constraints
    )


def _multi_relations(model: type[models.Model], spec: EntitySpec) -> list[tuple[str, models.Field, str]]:
    """Return the multi-valued fields shown united: (name, field, matching kind).

    They are the collections duplicate control reads (the relations the MatchFields prefetch: phones,
    emails, messenger handles) and the many-to-many fields (tags).
    """
    kinds: dict[str, str] = {}
    for match_field in spec.fields:
        for path in match_field.prefetch:
            kinds.setdefault(path.split("__")[0], match_field.kind)
    result = []
    for model_field in model._meta.get_fields():
        if isinstance(model_field, GenericRelation) and model_field.name in kinds:
            result.append((model_field.name, model_field, kinds[model_field.name]))
        elif model_field.many_to_many and model_field.concrete:
            result.append((model_field.name, model_field, "text"))
    return result


@dataclass
class Cell:
    """One record's value of one field."""

    record_pk: int
    display: str
    is_empty: bool


@dataclass
class CompareRow:
    """One field (or one key of a JSON field): every record's value and the record whose value the survivor keeps."""

    name: str
    label: str
    cells: list[Cell]
    chosen_pk: int | None
    priority_pk: int
    # A unique value that cannot be given to another record (an order number): the priority's stays.
    locked: bool = False

    @property
    def is_uniform(self) -> bool:
        """All non-empty values are the same, so the choice changes nothing."""
        return len({cell.display for cell in self.cells if not cell.is_empty}) <= 1

    @property
    def selectable_pks(self) -> list[int]:
        if self.locked:
            return [self.priority_pk]
        return [cell.record_pk for cell in self.cells if not cell.is_empty]

    @property
    def choosable(self) -> bool:
        return any(not cell.is_empty for cell in self.cells)


@dataclass
class MultiRow:
    """A multi-valued field: each record's items and the union the survivor gets."""

    name: str
    label: str
    per_record: list[list[str]]
    united: list[str]


@dataclass
class RelatedRow:
    name: str
    model: type[models.Model]
    label: str
    counts: list[int]
    moving: int

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass
class CompareTable:
    """The side-by-side screen: one column per record, the priority record first."""

    spec: EntitySpec
    records: list[models.Model]
    priority: models.Model
    rows: list[CompareRow]
    multi_rows: list[MultiRow]
    related_rows: list[RelatedRow]
    expected: dict[int, str] = field(default_factory=dict)

    @property
    def related_rows_present(self) -> list[RelatedRow]:
        """The relations any of the records has rows in (the screen leaves out the empty ones)."""
        return [row for row in self.related_rows if row.total]

    @property
    def absorbed(self) -> list[models.Model]:
        return [record for record in self.records if record.pk != self.priority.pk]

    def default_choices(self) -> dict[str, int]:
        return {row.name: row.chosen_pk for row in self.rows if row.chosen_pk is not None}

    def summary(self, choices: dict[str, int] | None = None) -> "MergeSummary":
        return merge_summary(self, choices if choices is not None else self.default_choices())


def _default_choice(cells: list[Cell], priority_pk: int) -> int | None:
    """The priority record's value; where it is empty, the first non-empty value of the others."""
    by_pk = {cell.record_pk: cell for cell in cells}
    if not by_pk[priority_pk].is_empty:
        return priority_pk
    for cell in cells:
        if not cell.is_empty:
            return cell.record_pk
    return None


def _ordered(model_fields: list[models.Field], field_order: Sequence[str]) -> list[models.Field]:
    position = {name: index for index, name in enumerate(field_order)}
    return sorted(model_fields, key=lambda f: position.get(f.name, len(position)))  # stable: model order after


def _ordered_multi(relations_: list[tuple], field_order: Sequence[str]) -> list[tuple]:
    position = {name: index for index, name in enumerate(field_order)}
    return sorted(relations_, key=lambda item: position.get(item[0], len(position)))


def _json_display(value) -> str:
    if is_empty(value):
        return EMPTY_DISPLAY
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _json_rows(model, model_field, records, values, priority_pk) -> list[CompareRow]:
    """One row per key of a JSON object field (custom fields), as the merge engine merges them key by key."""
    keys: list[str] = []
    for value in values:
        for key in value or {}:
            if key not in keys:
                keys.append(key)
    if not keys:
        cells = [Cell(record_pk=record.pk, display=EMPTY_DISPLAY, is_empty=True) for record in records]
        return [
            CompareRow(
                name=model_field.name,
                label=capfirst(model_field.verbose_name),
                cells=cells,
                chosen_pk=None,
                priority_pk=priority_pk,
            )
        ]
    rows = []
    for key in keys:
        name = f"{model_field.name}{KEY_SEPARATOR}{key}"
        cells = []
        for record, value in zip(records, values):
            item = (value or {}).get(key)
            cells.append(Cell(record_pk=record.pk, display=_json_display(item), is_empty=is_empty(item)))
        rows.append(
            CompareRow(
                name=name,
                label=field_label(model, name),
                cells=cells,
                chosen_pk=_default_choice(cells, priority_pk),
                priority_pk=priority_pk,
            )
        )
    return rows


def _item_key(kind: str, item) -> str:
    text = str(item)
    # Two items are one when the normaliser of the MatchField kind reading the relation keys them alike
    # (phones by E.164, emails case-folded); what it cannot key is told apart by its folded text.
    key = normalize.kind_key(kind, text)
    return key or normalize.text_key(text) or text


def compare_table(
    model: type[models.Model],
    pks: Sequence[int],
    *,
    priority_pk: int | None = None,
    field_order: Sequence[str] = (),
) -> CompareTable:
    """Return the compare table of these records of ``model``, the priority record first.

    ``field_order`` puts the rows in the order managers know from the card (the admin's fieldsets); fields it
    does not name follow in model order.

    Raises MergeSelectionError for fewer than two records, unknown or archived ones. Queries: one for the
    records with their foreign keys, one per multi-valued field, one per related count; never per record.
    """
    spec = _spec_for(model)
    records = load_records(model, pks)
    priority_pk = records[0].pk if priority_pk is None else priority_pk
    by_pk = {record.pk: record for record in records}
    if priority_pk not in by_pk:
        raise MergeSelectionError(_("The priority record must be one of the records compared."))
    priority = by_pk[priority_pk]
    records = [priority] + [record for record in records if record.pk != priority_pk]
    ordered_pks = [record.pk for record in records]

    rows = []
    for model_field in _ordered(mergeable_fields(model), field_order):
        values = [getattr(record, model_field.name) for record in records]
        if isinstance(model_field, models.JSONField) and all(isinstance(v, dict) or is_empty(v) for v in values):
            rows.extend(_json_rows(model, model_field, records, values, priority_pk))
            continue
        cells = [
            Cell(
                record_pk=record.pk,
                display=display_value(model_field, value),
                is_empty=is_empty(value),
            )
            for record, value in zip(records, values)
        ]
        locked = _cannot_move(model, model_field)
        rows.append(
            CompareRow(
                name=model_field.name,
                label=capfirst(model_field.verbose_name),
                cells=cells,
                chosen_pk=priority_pk if locked else _default_choice(cells, priority_pk),
                priority_pk=priority_pk,
                locked=locked,
            )
        )

    multi_rows = []
    for name, model_field, kind in _ordered_multi(_multi_relations(model, spec), field_order):
        per_record: dict[int, list[str]] = {pk: [] for pk in ordered_pks}
        related_model = model_field.related_model
        if isinstance(model_field, GenericRelation):
            content_type = ContentType.objects.get_for_model(model)
            object_id = model_field.object_id_field_name
            items = related_model._default_manager.filter(
                **{model_field.content_type_field_name: content_type, f"{object_id}__in": ordered_pks}
            )
            for item in items:
                per_record[int(getattr(item, object_id))].append(item)
        else:
            through = model_field.remote_field.through
            owner = f"{model_field.m2m_field_name()}_id"
            target = model_field.m2m_reverse_field_name()
            links = through._default_manager.filter(**{f"{owner}__in": ordered_pks}).select_related(target)
            for link in links:
                per_record[getattr(link, owner)].append(getattr(link, target))
        united: dict[str, str] = {}
        for pk in ordered_pks:
            for item in per_record[pk]:
                united.setdefault(_item_key(kind, item), str(item))
        multi_rows.append(
            MultiRow(
                name=name,
                label=capfirst(model_field.verbose_name),
                per_record=[[str(item) for item in per_record[pk]] for pk in ordered_pks],
                united=list(united.values()),
            )
        )

    counts = related_counts(model, ordered_pks)
    related_rows = [
        RelatedRow(
            name=relation.name,
            model=relation.model,
            label=capfirst(relation.model._meta.verbose_name_plural),
            counts=[counts[pk][relation.name] for pk in ordered_pks],
            moving=sum(counts[pk][relation.name] for pk in ordered_pks[1:]),
        )
        for relation in relations(spec)
    ]
    return CompareTable(
        spec=spec,
        records=records,
        priority=priority,
        rows=rows,
        multi_rows=multi_rows,
        related_rows=related_rows,
        expected={record.pk: record_version(record) for record in records},
    )


def record_version(record: models.Model) -> str:
    """Return the version of a record as the screen saw it: its updated_at, ISO formatted."""
    updated_at = getattr(record, "updated_at", None)
    return updated_at.isoformat() if updated_at else ""


# --- What will happen --------------------------------------------------------------------------------------


@dataclass
class MergeSummary:
    headline: str
    taken_from_others: list[str]
    united: list[str]


def merge_summary(table: CompareTable, choices: dict[str, int]) -> MergeSummary:
    """Say what the merge will do: "Customer #12 stays; 2 records will be archived; 14 notes, 3 orders move"."""
    absorbed = len(table.absorbed)
    parts = [
        _("%(record)s stays") % {"record": record_label(table.priority)},
        ngettext(
            "%(count)d record will be archived", "%(count)d records will be archived", absorbed
        ) % {"count": absorbed},
    ]
    moving = [
        f"{row.moving} {model_ngettext(row.model, row.moving)}"
        for row in table.related_rows
        if row.moving
    ]
    if moving:
        parts.append(_("%(rows)s move") % {"rows": ", ".join(moving)})
    else:
        parts.append(_("no related records to move"))
    # A row whose values are all the same changes nothing, whichever record it is taken from.
    labels = {row.name: row.label for row in table.rows if not row.is_uniform}
    taken = [
        labels[name] for name, pk in choices.items() if name in labels and pk is not None and pk != table.priority.pk
    ]
    united = [row.label for row in table.multi_rows if row.united]
    return MergeSummary(headline="; ".join(parts), taken_from_others=taken, united=united)

