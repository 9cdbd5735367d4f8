"""Ask duplicate control whether an imported row duplicates a record: the card's own engine, on unsaved data.

One matcher for every caller: a row is turned into the registry's {match field: [values]} and given to
`dedup.engine.finder.duplicates_of_values`, the function the intake and the warning while typing ask. A row
duplicating an earlier row of the same file is found the same way, because the engine writes its rows batch by
batch and splits a batch where a row meets an earlier row of it (engine._write_batch), so that the earlier row is
in the index when the later one is asked about.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from dedup import registry
from dedup.engine.finder import Match, duplicates_of_values, duplicates_of_values_many
from dedup.messages import register, stored
from django.utils.translation import gettext_lazy as _

from ..models import DuplicatePolicy

SAME_EXTERNAL_ID = register("crm.import.same_external_id", _("same external ID %(value)s"))

#: What a command-line or admin import does with a duplicate when nobody says: create it and flag it, so that
#: no row of the file is lost and nothing existing is changed without a person choosing so.
DEFAULT_POLICY = DuplicatePolicy.CREATE


@dataclass
class RowMatch:
    """The record a row duplicates (the best of the engine's matches) and why, as stored texts."""

    record: models.Model
    reasons: list = field(default_factory=list)

    @property
    def pk(self) -> int:
        return self.record.pk


def row_match_values(
    spec: registry.EntitySpec,
    *,
    values: dict[str, Any],
    related: dict[str, Iterable[str]],
) -> dict[str, list[str]]:
    """Return the finder's {match field: [values]} of a row not saved yet.

    ``values`` are the row's own model fields; ``related`` gives the values read through a relation by the
    relation's name ("phones", "emails", "messengers", "company"). A field read from the record's own columns
    (a full name from its three parts) is read from an unsaved record holding the row's values, so the row is
    matched exactly as the saved record will be.
    """
    found: dict[str, list[str]] = {}
    record = None
    for match_field in spec.fields:
        columns = match_field.columns or ()
        relation = next((column.split("__", 1)[0] for column in columns if "__" in column), None)
        if relation is not None:
            read = [str(value) for value in related.get(relation, ()) if value]
        else:
            if record is None:
                record = spec.model(**{name: value for name, value in values.items() if _is_field(spec, name)})
            try:
                read = [str(value) for value in match_field.read(record) if value]
            except Exception:  # noqa: BLE001  (a field that cannot read an unsaved record is simply not matched)
                read = []
        if read:
            found[match_field.name] = read
    return found


def _is_field(spec: registry.EntitySpec, name: str) -> bool:
    try:
        spec.model._meta.get_field(name)
    except Exception:  # noqa: BLE001
        return False
    return True


def row_duplicate(entity: str, *, values: dict[str, list[str]], stage: models.Model | None = None) -> RowMatch | None:
    """Return the record these unsaved values duplicate by the active rules (the best match), or None."""
    if not values:
        return None
    matches = duplicates_of_values(entity, values=values, stage=stage, limit=1)
    if not matches:
        return None
    return _row_match(matches[0])


def rows_duplicates(
    entity: str, items: list[tuple[dict[str, list[str]], models.Model | None]]
) -> list[RowMatch | None]:
    """Return row_duplicate of many rows ((values, stage) each) at once: a constant number of queries per chunk."""
    return [
        _row_match(matches[0]) if matches else None
        for matches in duplicates_of_values_many(entity, items, limit=1)
    ]


def _row_match(match: Match) -> RowMatch:
    return RowMatch(record=match.record, reasons=[stored(reason) for reason in match.reasons])
