"""Which kinds of keys the index keeps for an entity, and which of them a change of some fields touches."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import connections, router

from dedup import db
from dedup.engine import keys, match_settings, score_keys
from dedup.models import IndexedKind, MatchKey
from dedup.registry import EntitySpec

# Marks an entity whose plan was synced once (so an entity that needs no kinds is not re-synced on every save).
SYNCED_MARKER = "*"
# Stored kinds starting so are markers, not kinds of keys: SYNCED_MARKER and the value settings' version
# (dedup.engine.match_settings.MARKER_PREFIX).
MARKER_START = "*"


def key_kinds(kinds) -> set[str]:
    """Return the kinds of keys among stored kinds (markers left out)."""
    return {kind for kind in kinds if not kind.startswith(MARKER_START)}


def stored_kinds(spec: EntitySpec) -> set[str]:
    """Read the entity's kinds (with SYNCED_MARKER once synced) with plain SQL: every save asks, and the ORM's
    compiling cost more than the query."""
    connection = connections[router.db_for_read(IndexedKind)]
    sql = (
        f"SELECT {db.column(connection, IndexedKind, 'kind')} FROM {db.table(connection, IndexedKind)} "
        f"WHERE {db.column(connection, IndexedKind, 'entity')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [spec.key])
        kinds = {kind for (kind,) in cursor.fetchall()}
    # The placeholders and custom field types this process uses must be the version the kinds carry.
    match_settings.observe(match_settings.version_in(kinds))
    _seen_kinds[(connection.alias, spec.key)] = frozenset(kinds)
    return kinds


# The kinds each entity's index keeps (with SYNCED_MARKER), as this process last read them. Where the database
# has one-statement writes, a new record's or a save's keys are written by one statement that first checks
# these are still the stored kinds, and writes nothing when they are not (a rule changed in another process):
# the write is then redone with the kinds read afresh. So the common save pays no query for them, and a
# changed rule is never missed. (Kind 3 of the caching rule in docs/ARCHITECTURE.md: rows kept per process,
# checked by the database on every use.)
_seen_kinds: dict[tuple[str, str], frozenset[str]] = {}


def seen_kinds(spec: EntitySpec) -> frozenset[str] | None:
    """Return the entity's stored kinds as this process last read them, where a write can check them in the
    same statement (one-statement writes); else None, and the caller reads them."""
    connection = connections[router.db_for_write(MatchKey)]
    return _seen_kinds.get((connection.alias, spec.key)) if db.one_statement_writes(connection) else None


def forget_seen_kinds(entity: str) -> None:
    """Drop what this process remembers of the entity's kinds (they changed, here or elsewhere)."""
    for key in [key for key in _seen_kinds if key[1] == entity]:
        del _seen_kinds[key]


def kinds_reading(
    spec: EntitySpec, field_names: Iterable[str], *, available: set[str]
) -> set[str] | None:
    """Return the kinds (of those `available`, the indexed ones) whose keys a change of these model fields can
    change (a save with update_fields=["first_name"] rewrites the name keys, not the phone keys); None when
    every kind must be rewritten (the archive flag changed, or a field whose columns are not declared)."""
    changed = set(field_names)
    if spec.archived_attr and spec.archived_attr in changed:
        return None
    affected: set[str] = set()
    for kind in available:
        name, mode = keys.field_of_kind(kind)
        if mode == "score":
            score_columns = score_keys.columns(spec)
            if score_columns is None:
                return None
            if any(column.split("__")[0] in changed for column in score_columns):
                affected.add(kind)
            continue
        if mode == "stage":
            if spec.stage_field in changed:
                affected.add(kind)
            continue
        if mode == "time":
            if spec.time_field in changed:
                affected.add(kind)
            continue
        if mode == "equal" and not spec.has_field(name):
            if name in changed:  # a plain model field compared for equality (read_equal)
                affected.add(kind)
            continue
        if not spec.has_field(name) or spec.field(name).columns is None:
            return None
        if any(column.split("__")[0] in changed for column in spec.field(name).columns):
            affected.add(kind)
    return affected
