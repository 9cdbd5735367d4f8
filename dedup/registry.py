"""The entity registry: which models take part in duplicate control and how their fields are read."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import models


@dataclass(frozen=True)
class MatchField:
    """A field duplicate control can compare: its name, how to normalise it, how to read it from a record."""

    name: str
    label: str
    kind: str  # a normaliser: phone, email, person_name, company_name, handle, text
    read: Callable[[models.Model], Iterable[str]]
    prefetch: tuple[str, ...] = ()


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

    def field(self, name: str) -> MatchField:
        for match_field in self.fields:
            if match_field.name == name:
                return match_field
        raise KeyError(name)

    @property
    def prefetch(self) -> list[str]:
        return sorted({path for match_field in self.fields for path in match_field.prefetch})


_registry: dict[str, EntitySpec] = {}


def register(spec: EntitySpec) -> EntitySpec:
    """Register an entity; adding an entity to duplicate control is this one call."""
    _registry[spec.key] = spec
    return spec


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
