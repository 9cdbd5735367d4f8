"""Write match keys: the three strategies (one statement for a save's few rows, COPY for many, a plain delete
and insert elsewhere), each for kinds the caller names."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from django.db import connections, models, router, transaction

from dedup import db
from dedup.engine import keys
from dedup.models import IndexedKind, MatchKey
from dedup.registry import EntitySpec

from .load import load_records
from .plan import forget_seen_kinds

# Records reindexed per batch: one query per loading path per batch, and a few thousand key rows per insert.
BATCH_SIZE = 1000
# Key rows up to which a reindex writes with one statement (a save's few rows); more go through COPY.
SMALL_WRITE_ROWS = 500
# Records per page when walking an entity's ids (keyset pagination).
_PAGE = 10000

_COLUMNS = ("entity", "record_id", "kind", "key", "value")


def write_keys(
    spec: EntitySpec,
    pks: Iterable[int],
    kinds: set[str],
    *,
    replace_kinds: bool = False,
    new_records: bool = False,
    compare: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute these kinds of keys of these records in batches (a constant number of queries per batch);
    return the key rows the records have now. See index.reindex; compare: see write_changes."""
    written = 0
    for batch in db.batches(pks, batch_size):
        if compare and not new_records:
            rows = key_rows(spec, load_records(spec, batch, kinds), kinds) if kinds else []
            write_changes(spec, batch, rows, kinds=kinds if replace_kinds else None)
            written += len(rows)
        else:
            written += _write_batch(spec, batch, kinds, replace_kinds=replace_kinds, new_records=new_records)
        if progress:
            progress(len(batch))
    return written


def _write_batch(
    spec: EntitySpec, pks: list[int], kinds: set[str], *, replace_kinds: bool, new_records: bool = False
) -> int:
    rows = key_rows(spec, load_records(spec, pks, kinds), kinds) if kinds else []
    if new_records:
        insert_rows(rows)
        return len(rows)
    connection = connections[router.db_for_write(MatchKey)]
    if db.one_statement_writes(connection) and len(rows) <= SMALL_WRITE_ROWS:
        write_in_one_statement(spec, rows, delete_pks=pks, delete_kinds=kinds if replace_kinds else None)
        return len(rows)
    # Old keys out and new keys in together: a reader never sees a record without its keys. No savepoint:
    # inside a caller's transaction (a save) this joins it at no extra query.
    with transaction.atomic(savepoint=False):
        stale = MatchKey.objects.filter(entity=spec.key, record_id__in=pks)
        if replace_kinds:
            stale = stale.filter(kind__in=kinds)
        stale.delete()
        insert_rows(rows)
    return len(rows)


def write_changes(spec: EntitySpec, pks: list[int], rows: list[tuple], *, kinds: set[str] | None = None) -> int:
    """Make these records' stored keys (of these kinds, or all) exactly `rows`, writing only the difference:
    the stored rows are read, those no longer wanted deleted by id, the missing ones inserted; return the rows
    written (deleted and inserted).

    For rebuilds: most of a rebuild's keys come out as they were (a placeholder or a field type changes a few
    values), and deleting and inserting them all again cost the database as much as computing them cost Python
    (bench/README.md, "Index rebuilds"). The stored rows are read by record alone, never with their kinds in the
    condition: with a rare or new kind PostgreSQL chose the (entity, kind, key) index for that and scanned it
    whole, once per batch.
    """
    connection = connections[router.db_for_write(MatchKey)]
    table = db.table(connection, MatchKey)
    names = [db.column(connection, MatchKey, name) for name in ("id", *_COLUMNS[1:])]
    test, params = db.among(connection, pks)
    wanted = set(rows)
    kept: set[tuple] = set()
    stale: list[int] = []
    # Old rows out and new rows in together: a reader never sees a record without its keys.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(names)} FROM {table} WHERE {db.column(connection, MatchKey, 'entity')} = %s "
            f"AND {db.column(connection, MatchKey, 'record_id')} {test}",
            [spec.key, *params],
        )
        for pk, record_id, kind, key, value in cursor.fetchall():
            if kinds is not None and kind not in kinds:
                continue
            row = (spec.key, record_id, kind, key, value)
            if row in wanted and row not in kept:
                kept.add(row)
            else:
                stale.append(pk)  # no longer wanted, or a second copy
        if stale:
            test, params = db.among(connection, stale)
            cursor.execute(f"DELETE FROM {table} WHERE {names[0]} {test}", params)
        missing = [row for row in rows if row not in kept] if kept else rows
        insert_rows(missing)
    return len(stale) + len(missing)


def key_rows(spec: EntitySpec, records: Iterable[models.Model], kinds: set[str]) -> list[tuple]:
    """Return the index rows (entity, record id, kind, key, value) of these records for these kinds."""
    return [
        (spec.key, record.pk, row.kind, row.key, row.value)
        for record in records
        for row in keys.record_rows(spec, record, kinds)
    ]


def insert_rows(rows: list[tuple[str, int, str, str, str]]) -> None:
    """Insert key rows: a save's few as one INSERT, more with COPY where the database has it (a tenth of the
    cost of INSERTs), one executemany elsewhere (dedup.db)."""
    db.insert_rows(MatchKey, _COLUMNS, rows, copy_from=SMALL_WRITE_ROWS + 1)


def write_if_kinds_unchanged(
    spec: EntitySpec, expected: frozenset[str], rows: list[tuple], *, delete_pks=None, delete_kinds=None
) -> bool:
    """In one statement, if the entity's stored kinds are still `expected`, delete the records' old keys (of
    these kinds, or all) and insert `rows`; return whether they were (else nothing is written)."""
    fresh = write_in_one_statement(spec, rows, delete_pks=delete_pks, delete_kinds=delete_kinds, expected=expected)
    if not fresh:
        forget_seen_kinds(spec.key)
    return fresh


def write_in_one_statement(
    spec: EntitySpec, rows: list[tuple], *, delete_pks=None, delete_kinds=None, expected: frozenset[str] | None = None
) -> bool:
    """Delete the records' old keys (of these kinds, or all) and insert `rows` in one statement (data-modifying
    WITHs, where db.one_statement_writes); with `expected`, only if the entity's stored kinds are still those.
    Return whether written.

    A single statement is atomic on its own: a save pays one round trip for its keys instead of five (BEGIN,
    DELETE, COPY, COMMIT), which is most of the cost of keeping the index current.
    """
    connection = connections[router.db_for_write(MatchKey)]
    table = db.table(connection, MatchKey)
    columns = [db.column(connection, MatchKey, name) for name in _COLUMNS]
    entity, record_id, kind = columns[0], columns[1], columns[2]
    parts, params, guard = [], [], ""
    if expected is not None:
        kind_column = db.column(connection, IndexedKind, "kind")
        parts.append(
            f"checked AS (SELECT COUNT(*) = %s AND COALESCE(BOOL_AND({kind_column} = ANY(%s)), TRUE) AS fresh "
            f"FROM {db.table(connection, IndexedKind)} WHERE {db.column(connection, IndexedKind, 'entity')} = %s)"
        )
        params += [len(expected), sorted(expected), spec.key]
        guard = " AND (SELECT fresh FROM checked)"
    if delete_pks is not None:
        condition = f"{entity} = %s AND {record_id} = ANY(%s)"
        params += [spec.key, list(delete_pks)]
        if delete_kinds is not None:
            condition += f" AND {kind} = ANY(%s)"
            params.append(sorted(delete_kinds))
        parts.append(f"stale AS (DELETE FROM {table} WHERE {condition}{guard})")
    if rows:
        row = "(%s::varchar, %s::bigint, %s::varchar, %s::varchar, %s::varchar)"
        parts.append(
            f"written AS (INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM (VALUES "
            f"{', '.join([row] * len(rows))}) AS new_keys WHERE TRUE{guard})"
        )
        params += [value for key_row in rows for value in key_row]
    if not parts:
        return True
    result = "SELECT fresh FROM checked" if expected is not None else "SELECT TRUE"
    with connection.cursor() as cursor:
        cursor.execute("WITH " + ", ".join(parts) + " " + result, params)
        return bool(cursor.fetchone()[0])


def delete_keys(spec: EntitySpec, pks: Iterable[int]) -> None:
    """Delete every key of these records."""
    for batch in db.batches(pks, BATCH_SIZE):
        MatchKey.objects.filter(entity=spec.key, record_id__in=batch).delete()


def all_pks(spec: EntitySpec) -> Iterator[int]:
    """Yield every record id of the entity in id order, a page at a time (keyset pagination, no OFFSET)."""
    manager = spec.model._base_manager
    last = None
    while True:
        queryset = manager.order_by("pk")
        if last is not None:
            queryset = queryset.filter(pk__gt=last)
        page = list(queryset.values_list("pk", flat=True)[:_PAGE])
        if not page:
            return
        yield from page
        last = page[-1]
