"""Which value of each field the survivor keeps, and how field values are written to and read from a snapshot."""
from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.duration import duration_iso_string
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy

from .errors import MergeError

# Merge bookkeeping and timestamps: set by the engine itself, never chosen.
ARCHIVED_FIELD = "is_archived"
MERGED_INTO_FIELD = "merged_into"
VERSION_FIELD = "updated_at"
BOOKKEEPING_FIELDS = frozenset({ARCHIVED_FIELD, MERGED_INTO_FIELD, "created_at", VERSION_FIELD})

# A choice for one key of a JSON field: {"custom_fields.colour": 12}.
KEY_SEPARATOR = "."


def mergeable_fields(model: type[models.Model]) -> list[models.Field]:
    """Return the fields whose value the survivor takes from one record: concrete, editable, not bookkeeping."""
    return [
        model_field
        for model_field in model._meta.concrete_fields
        if model_field.editable and not model_field.primary_key and model_field.name not in BOOKKEEPING_FIELDS
    ]


def is_empty(value) -> bool:
    """Return whether a value counts as "not filled in"; False and 0 are values, not blanks."""
    return value is None or value == "" or value == [] or value == {}


def _words(value: str) -> list[str]:
    return [word.rstrip(".").casefold() for word in value.replace(".", ". ").split() if word.rstrip(".")]


def is_shorter_form(value, of) -> bool:
    """Return whether text ``value`` is a shorter form of ``of``: the same words, some cut to their initial.

    "P" and "P." are shorter forms of "Petrov", "I. Petrov" of "Ivan Petrov"; "Petrova" is not one of "Petrov"
    and neither is "petrov" (the same length). A merge never trades a value for a shorter form of itself.
    """
    if not isinstance(value, str) or not isinstance(of, str):
        return False
    short, full = _words(value), _words(of)
    if not short or len(short) != len(full) or short == full:
        return False
    return all(s == f or (len(s) == 1 and f.startswith(s)) for s, f in zip(short, full))


# --- Snapshot values ----------------------------------------------------------------------------------------


def dump_value(model_field: models.Field, value):
    """Return a field's value as JSON (dates as ISO text, decimals as text, files by name)."""
    if value is None:
        return None
    if isinstance(model_field, models.JSONField):
        return value
    if isinstance(value, FieldFile):
        return value.name or ""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, memoryview):
        return bytes(value).hex()
    if isinstance(value, bytes):
        return value.hex()
    return value


def load_value(model_field: models.Field, data):
    """Return a value written by dump_value as the field's Python value."""
    if data is None or isinstance(model_field, models.JSONField):
        return data
    if isinstance(model_field, models.BinaryField):
        return bytes.fromhex(data)
    if isinstance(model_field, models.FileField):
        return data
    return model_field.to_python(data)


def dump_record(record: models.Model, fields: Sequence[models.Field]) -> dict:
    """Return {attname: JSON value} of these fields of a record."""
    return {f.attname: dump_value(f, getattr(record, f.attname)) for f in fields}


def dump_row(row: models.Model) -> dict:
    """Return every concrete column of a row, so the row can be recreated exactly."""
    return dump_record(row, row._meta.concrete_fields)


def load_row(model: type[models.Model], data: Mapping) -> models.Model:
    """Return an unsaved instance of ``model`` with the columns written by dump_row."""
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    return model(**{name: load_value(by_attname[name], value) for name, value in data.items() if name in by_attname})


# --- Choices ------------------------------------------------------------------------------------------------


def _json_dict_fields(model: type[models.Model]) -> set[str]:
    return {f.name for f in mergeable_fields(model) if isinstance(f, models.JSONField)}


def clean_choices(model: type[models.Model], choices: Mapping | None, record_pks: Sequence[int]) -> dict[str, int]:
    """Return the choices as {field name (or "json_field.key"): record pk}; refuse unknown fields or records."""
    if not choices:
        return {}
    if not isinstance(choices, Mapping):
        raise MergeError.of(gettext_lazy("The field choices must map field names to records."))
    names = {f.name for f in mergeable_fields(model)}
    json_fields = _json_dict_fields(model)
    allowed = {int(pk) for pk in record_pks}
    cleaned = {}
    for name, pk in choices.items():
        name = str(name)
        base = name.split(KEY_SEPARATOR, 1)[0] if KEY_SEPARATOR in name else name
        if base not in names or (base != name and base not in json_fields):
            raise MergeError.of(gettext_lazy("“%(field)s” is not a field that can be chosen when merging."), field=name)
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            raise MergeError.of(
                gettext_lazy("The record chosen for “%(field)s” is not one of the merged records."), field=name
            ) from None
        if pk not in allowed:
            raise MergeError.of(
                gettext_lazy("The record chosen for “%(field)s” is not one of the merged records."), field=name
            )
        cleaned[name] = pk
    return cleaned


# --- The plan -----------------------------------------------------------------------------------------------


@dataclass
class FieldPlan:
    """What the survivor's fields become."""

    values: dict[str, object] = field(default_factory=dict)  # {attname: new value}, only the changed ones
    sources: dict[str, int] = field(default_factory=dict)  # {field name: pk the value came from}
    # Unique values taken from an absorbed record are cleared there first: {pk: {attname: empty value}}.
    cleared: dict[int, dict[str, object]] = field(default_factory=dict)

    @property
    def changed_fields(self) -> list[str]:
        return list(self.sources)


def _unique_kind(model: type[models.Model], model_field: models.Field) -> str | None:
    """Return "unique", "conditional" (unique only where filled in) or None for a field."""
    if model_field.unique:
        return "unique"
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and tuple(constraint.fields) == (model_field.name,):
            return "conditional" if constraint.condition is not None else "unique"
    return None


def _merge_json(
    name: str, ordered: list[models.Model], base_pk: int, key_choices: dict[str, int]
) -> tuple[dict, dict[str, int]]:
    """Merge a JSON object key by key: the base record's keys, gaps filled from the others in order."""
    by_pk = {record.pk: record for record in ordered}
    result: dict = {}
    key_sources: dict[str, int] = {}
    for record in [by_pk[base_pk]] + [r for r in ordered if r.pk != base_pk]:
        value = getattr(record, name)
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            if key not in result or (is_empty(result[key]) and not is_empty(item)):
                result[key] = item
                key_sources[key] = record.pk
    for key, pk in key_choices.items():
        value = getattr(by_pk[pk], name)
        if isinstance(value, dict) and key in value:
            result[key] = value[key]
            key_sources[key] = pk
        else:
            result.pop(key, None)
            key_sources.pop(key, None)
    return result, key_sources


def plan_fields(
    *, survivor: models.Model, absorbed: Sequence[models.Model], choices: Mapping[str, int]
) -> FieldPlan:
    """Decide each field of the survivor: its own value by default, where it is empty the first non-empty value
    of the absorbed records (in the order given), or the record ``choices`` names."""
    model = type(survivor)
    ordered = [survivor, *absorbed]
    by_pk = {record.pk: record for record in ordered}
    plan = FieldPlan()
    for model_field in mergeable_fields(model):
        name = model_field.name
        current = getattr(survivor, model_field.attname)
        key_choices = {
            key.split(KEY_SEPARATOR, 1)[1]: pk
            for key, pk in choices.items()
            if key.startswith(name + KEY_SEPARATOR)
        }
        if isinstance(model_field, models.JSONField) and (isinstance(current, dict) or is_empty(current)):
            base_pk = choices.get(name, survivor.pk)
            value, key_sources = _merge_json(name, ordered, base_pk, key_choices)
            if value == current or (is_empty(value) and is_empty(current)):
                continue
            source = base_pk
            if source == survivor.pk:
                source = next((pk for pk in key_sources.values() if pk != survivor.pk), survivor.pk)
            plan.values[model_field.attname] = value
            plan.sources[name] = source
            continue
        if name in choices:
            source = choices[name]
        elif is_empty(current):
            source = next(
                (r.pk for r in absorbed if not is_empty(getattr(r, model_field.attname))), survivor.pk
            )
        else:
            # "P" kept by the survivor gives way to the "Petrov" of a merged record.
            source = next(
                (r.pk for r in absorbed if is_shorter_form(current, getattr(r, model_field.attname))), survivor.pk
            )
        if source == survivor.pk:
            continue
        value = getattr(by_pk[source], model_field.attname)
        if value == current or is_shorter_form(value, current):
            continue
        plan.values[model_field.attname] = value
        plan.sources[name] = source
        if not is_empty(value):
            _plan_unique_clear(model, model_field, by_pk[source], plan)
    return plan


def _plan_unique_clear(model, model_field, source: models.Model, plan: FieldPlan) -> None:
    """A unique value moves rather than being copied: clear it on the record it comes from."""
    kind = _unique_kind(model, model_field)
    if kind is None:
        return
    if model_field.null:
        empty = None
    elif kind == "conditional" and isinstance(model_field, (models.CharField, models.TextField)):
        empty = ""
    else:
        raise MergeError.of(
            gettext_lazy("%(field)s must be unique, so the value of %(record__gen)s cannot be given to another record."),
            field=model_field.verbose_name,
            record=source,
        )
    plan.cleared.setdefault(source.pk, {})[model_field.attname] = empty


def field_label(model: type[models.Model], name: str) -> str:
    """Return a field's verbose name for messages ("custom fields: colour" for a JSON key)."""
    base, _sep, key = name.partition(KEY_SEPARATOR)
    try:
        label = str(capfirst(model._meta.get_field(base).verbose_name))
    except FieldDoesNotExist:
        label = base
    return f"{label}: {key}" if key else label
