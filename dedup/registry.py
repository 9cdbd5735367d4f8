"""The entity registry: which models take part in duplicate control and how their fields are read."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import models


@dataclass(frozen=True)
class MatchField:
    """A field duplicate control can compare: its name, how to normalise it, how to read it from a record."""

    name: str
    label: str
    kind: str  # a normaliser: phone, email, person_name, company_name, handle, website, text
    read: Callable[[models.Model], Iterable[str]]
    prefetch: tuple[str, ...] = ()
    # Optional: (normalised key, value as typed) pairs the model already stores (a phone's E.164 column), so
    # indexing does not normalise again; values with no stored key are simply not matched.
    read_keys: Callable[[models.Model], Iterable[tuple[str, str]]] | None = None
    # Optional: the model fields `read` and `read_keys` use, as paths from the record ("first_name",
    # "company__name", "phones__e164"). When every field a batch needs lists them, the index loads only these
    # columns, about half the cost of whole rows in a bulk import; None loads whole rows. A field read but not
    # listed still works, at one query per record, which the index's query-count tests catch.
    columns: tuple[str, ...] | None = None
    # Optional: the one path of `columns` whose non-empty values are the field's values, one per related row
    # (`read_keys`' stored keys when the field has them, as a phone's E.164): a reader of the whole base takes
    # them from its rows without building an instance per record (dedup.engine.scoring.base_read).
    plain_column: str | None = None


@dataclass(frozen=True)
class EntitySpec:
    """One registered entity."""

    key: str
    model: type[models.Model]
    fields: tuple[MatchField, ...]
    # Leads and deals: the FK to the stage whose pipeline and meaning scope them.
    stage_field: str | None = None
    # Deals: the fields a rule may require to be equal (e.g. service).
    equal_fields: tuple[str, ...] = ()
    summary_fields: tuple[str, ...] = ()
    related_counts: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    # The field whose normalised value tells people apart (a person's or company's name): a phone or email held
    # by several different identities is a shared key (an office switchboard, info@...). None: no such check.
    identity_field: str | None = None
    # Leads and deals: whether a stage is closed (won or lost), which rules leave out by default, and the
    # filter (lookups on the stage model) of the stages that belong to this entity's pipelines.
    stage_closed: Callable[[models.Model], bool] | None = None
    stage_choices: dict = field(default_factory=dict)
    # The JSON attribute holding custom fields; each of its keys can be matched as the field "custom:<key>".
    custom_fields_attr: str | None = None
    # A record with this attribute true (merged away, archived) is never a match and has no keys.
    archived_attr: str | None = "is_archived"
    # Orders: the datetime field that places a record in time, and the window within which two records may be
    # duplicates at all (RetailCRM's rule: the same order placed twice within a day). A rule may set its own
    # window (Rule.time_window_hours); records further apart are never duplicates (a repeat purchase). None: no
    # time check.
    time_field: str | None = None
    default_window: timedelta | None = None

    def field(self, name: str) -> MatchField:
        for match_field in self.fields:
            if match_field.name == name:
                return match_field
        if self.custom_fields_attr and name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX):
            key = name[len(CUSTOM_PREFIX) :]
            return custom_match_field(self.custom_fields_attr, key, _custom_kinds.get((self.key, key), "text"))
        raise KeyError(name)

    def has_field(self, name: str) -> bool:
        try:
            self.field(name)
        except KeyError:
            return False
        return True

    @property
    def label(self) -> str:
        return self.model._meta.verbose_name

    @property
    def label_plural(self) -> str:
        return self.model._meta.verbose_name_plural

    @property
    def stage_model(self) -> type[models.Model] | None:
        if not self.stage_field:
            return None
        return self.model._meta.get_field(self.stage_field).related_model

    @property
    def prefetch(self) -> list[str]:
        return sorted({path for match_field in self.fields for path in match_field.prefetch})


# Where attach_related keeps a record's to-many rows loaded in bulk; nothing else reads or writes it.
_LOADED_RELATED_ATTR = "_dedup_loaded_related"


def attach_related(record: models.Model, rows: dict[str, list]) -> None:
    """Give a record the rows of some of its to-many relations ({relation name: rows}), loaded in bulk by the
    caller, for related() to return instead of querying: the index loads a batch's phones, emails and
    messengers in one query each, and a new record's creator passes the rows it just wrote (the `related`
    argument of records_bulk_saved). A plain list on the instance: building a QuerySet per record and relation
    to hold it in Django's prefetch cache cost more than loading the rows."""
    record.__dict__.setdefault(_LOADED_RELATED_ATTR, {}).update(rows)


def related(record: models.Model, name: str):
    """Return the rows of a to-many relation of a record: the ones attached (attach_related), the prefetched
    ones, else a query. MatchField readers use it for their relations."""
    loaded = record.__dict__.get(_LOADED_RELATED_ATTR)
    if loaded is not None and name in loaded:
        return loaded[name]
    cache = getattr(record, "_prefetched_objects_cache", None)
    if cache is not None and name in cache:
        return cache[name]
    return getattr(record, name).all()


# How a custom field (a key of the JSON custom fields) is named wherever a field name is expected: in a
# registered MatchField, a rule condition and the intake settings' chosen fields ("custom:colour").
CUSTOM_PREFIX = "custom:"


def custom_match_field(attr: str, key: str, kind: str = "text") -> MatchField:
    """Return a MatchField reading one key of a record's custom fields (JSON), normalised as `kind` (the type
    the administrator set, dedup.models.CustomFieldType; text by default)."""

    def read(record):
        value = (getattr(record, attr, None) or {}).get(key)
        if value is None or value == "" or isinstance(value, (dict, list)):
            return []
        return [str(value)]

    return MatchField(f"{CUSTOM_PREFIX}{key}", key, kind, read, columns=(attr,))


# The types of custom fields the administrator set, {(entity key, custom key): registry kind}, as this process
# last loaded them (dedup.engine.match_settings, which checks their version before keys are written).
_custom_kinds: dict[tuple[str, str], str] = {}


def set_custom_kinds(kinds: dict[tuple[str, str], str]) -> None:
    """Use these custom field types from now on; a change bumps `version`, so plans built from fields rebuild."""
    global version
    if kinds != _custom_kinds:
        _custom_kinds.clear()
        _custom_kinds.update(kinds)
        version += 1


def custom_kinds(entity: str) -> dict[str, str]:
    """Return {custom key: kind} of the entity's typed custom fields."""
    return {key: kind for (owner, key), kind in _custom_kinds.items() if owner == entity}


_registry: dict[str, EntitySpec] = {}


def register(spec: EntitySpec) -> EntitySpec:
    """Register an entity; adding an entity to duplicate control is this one call."""
    _registry[spec.key] = spec
    global version
    version += 1
    for callback in list(_listeners):
        callback(spec)
    return spec


_listeners: list[Callable[[EntitySpec], None]] = []


def on_register(callback: Callable[[EntitySpec], None]) -> None:
    """Call `callback(spec)` for every entity registered from now on (the index connects its signals so)."""
    _listeners.append(callback)


# Bumped on every registration, so caches built from the registry (the index's signal map) know to rebuild.
version = 0


def get(key: str) -> EntitySpec:
    return _registry[key]


def for_model(model: type[models.Model]) -> EntitySpec | None:
    model = getattr(model, "_meta").concrete_model
    for spec in _registry.values():
        if spec.model is model:
            return spec
    return None


def all_specs() -> list[EntitySpec]:
    return list(_registry.values())
