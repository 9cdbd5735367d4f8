"""The match-key index: each record's normalised keys, kept current on save and delete of records and of the
rows their fields read, on bulk writes (records_bulk_saved), on rule changes (new kinds are backfilled), and
by a full rebuild.

- `plan`: which kinds of keys an entity keeps, and which a change of some fields touches;
- `load`: records loaded with exactly what those kinds read;
- `write`: the write strategies (one statement for a save, COPY for many, delete and insert elsewhere);
- `builds`: rebuilds in the background and their progress, for the screens;
- `services`: reindex, reindex after a change, index new records, sync the kinds with the rules, rebuild;
- `upkeep`: the signal receivers that route saves, deletes, bulk writes and rule changes to the services, and
  `upkeep_once`, which holds a block's upkeep for its end (a card saved with its phones is indexed once).

Callers use this package: ``from dedup.engine import index; index.reindex(spec, pks)``.
"""
from __future__ import annotations

from .load import load_records
from .plan import SYNCED_MARKER, kinds_reading
from .services import (
    BACKFILL_INLINE_LIMIT,
    BACKFILL_TASK,
    backfill,
    build_run,
    index_new_records,
    indexed_kinds,
    rebuild,
    reindex,
    reindex_changed,
    sync_plan,
)
from .upkeep import connect, upkeep_once
from .write import BATCH_SIZE, SMALL_WRITE_ROWS, delete_keys, insert_rows

__all__ = [
    "BACKFILL_INLINE_LIMIT", "BACKFILL_TASK", "BATCH_SIZE", "SMALL_WRITE_ROWS", "SYNCED_MARKER", "backfill", "build_run",
    "connect", "delete_keys", "index_new_records", "indexed_kinds", "insert_rows", "kinds_reading",
    "load_records", "rebuild", "reindex", "reindex_changed", "sync_plan", "upkeep_once",
]
