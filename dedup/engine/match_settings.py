"""The administrator's value settings as this process uses them: the placeholder list (normalize) and the types
of custom fields (registry), reloaded whenever their version changes.

Every process keeps a copy (kind 3 of the caching rule in docs/ARCHITECTURE.md) checked against the database
without a query of its own: a change bumps `MatchSettings.version` and writes it as a marker kind ("*v:7") into
every entity's stored kinds, which each write of keys already verifies (index.plan.stored_kinds and the
one-statement write's check). A process that finds another version reloads before it writes a key, so no process
keeps writing keys with an old list. Readers that make no keys (the scoring of pairs, a scan) call `refresh()`
(one query).
"""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from dedup import registry
from dedup.engine import normalize
from dedup.models import CustomFieldType, IndexedKind, MatchSettings

MARKER_PREFIX = "*v:"
SETTINGS_PK = 1
# A placeholder longer than this is not a placeholder but a value.
PLACEHOLDER_MAX_LENGTH = 100

# The version this process applied (0: the defaults, nothing saved yet).
_applied_version: int | None = None


def marker(version: int) -> str:
    return f"{MARKER_PREFIX}{version}"


def version_in(kinds: Iterable[str]) -> int:
    """Return the settings version an entity's stored kinds carry (0 when none)."""
    found = 0
    for kind in kinds:
        if kind.startswith(MARKER_PREFIX) and kind[len(MARKER_PREFIX) :].isdigit():
            found = max(found, int(kind[len(MARKER_PREFIX) :]))
    return found


def current_version() -> int:
    return _applied_version or 0


def observe(version: int) -> None:
    """Reload the settings when the database's version is not the one this process applied."""
    if version != _applied_version:
        load()


def refresh() -> None:
    """Check the version (one query) and reload when it changed."""
    version = MatchSettings.objects.filter(pk=SETTINGS_PK).values_list("version", flat=True).first() or 0
    observe(version)


def parse_placeholders(text: str) -> frozenset[str]:
    """Return the placeholder entries of the admin's text (one per line), as compared."""
    return frozenset(
        entry for entry in (normalize.placeholder_entry(line) for line in (text or "").splitlines()) if entry
    )


def default_placeholders_text() -> str:
    return "\n".join(sorted(normalize.DEFAULT_PLACEHOLDERS))


def load() -> None:
    """Apply the stored settings to this process: the placeholder list and the custom fields' types."""
    global _applied_version
    row = MatchSettings.objects.filter(pk=SETTINGS_PK).first()
    placeholders = parse_placeholders(row.placeholders) if row is not None else normalize.DEFAULT_PLACEHOLDERS
    types = {(entity, key): kind for entity, key, kind in CustomFieldType.objects.values_list("entity", "key", "type")}
    normalize.use_placeholders(placeholders)
    registry.set_custom_kinds(types)
    _applied_version = row.version if row is not None else 0


@transaction.atomic
def settings_changed() -> int:
    """Bump the settings version and mark every entity's stored kinds with it (call inside the change's
    transaction); return the new version. The caller queues the rebuilds the change needs."""
    row, _created = MatchSettings.objects.select_for_update().get_or_create(
        pk=SETTINGS_PK, defaults={"placeholders": default_placeholders_text()}
    )
    MatchSettings.objects.filter(pk=SETTINGS_PK).update(version=row.version + 1)
    version = row.version + 1
    IndexedKind.objects.filter(kind__startswith=MARKER_PREFIX).delete()
    IndexedKind.objects.bulk_create(
        [IndexedKind(entity=spec.key, kind=marker(version)) for spec in registry.all_specs()], ignore_conflicts=True
    )
    # Every process's remembered kinds now differ from the stored ones, this one's too: its next write of keys
    # finds out and reads them afresh (index.plan).
    load()
    return version
