"""The database machinery both apps share, in one home: bulk inserts and COPY (`insert`), plain SQL rows read
as the ORM reads them (`rows`), and the differences between PostgreSQL and SQLite (`vendor`).

The rule for plain SQL: the ORM is the default. A path goes around it only where compiling the ORM's query
or per-value SQL cost more than the database's own work, measured on a hot path (the intake request, a save's
index upkeep, a bulk import, a scan), and then only through these functions: the SQL is built from the
models' _meta, values are prepared and converted by the fields themselves, and no caller tests
``connection.vendor``. `crm` imports this package; it imports nothing of either app.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from .insert import (
    COPY_MIN_ROWS,
    bulk_insert,
    bulk_insert_instances,
    insert_rows,
    insert_together,
    instance_values,
)
from .rows import (
    Rows,
    column,
    converted,
    fetch,
    instance,
    instance_builder,
    instances_together,
    instances_where,
    quote,
    select_list,
    table,
    width,
)
from .vendor import (
    among,
    arrays,
    copies,
    inserts_by_executemany,
    lock_if_free,
    lock_until_commit,
    one_statement_writes,
    samples_tables,
    set_local,
)

__all__ = [
    "COPY_MIN_ROWS", "Rows", "among", "arrays", "batches", "bulk_insert", "bulk_insert_instances", "column",
    "converted", "copies", "fetch", "insert_rows", "insert_together", "inserts_by_executemany", "instance",
    "instance_builder", "instance_values", "instances_together", "instances_where", "lock_if_free",
    "lock_until_commit", "one_statement_writes", "quote", "samples_tables", "select_list", "set_local", "table",
    "width",
]

Item = TypeVar("Item")


def batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Yield lists of up to `size` items in order, reading the iterable lazily (a generator of a million ids
    is never held whole)."""
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
