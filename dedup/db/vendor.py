"""The differences between the databases we run on, each behind one named function.

PostgreSQL in production, SQLite embedded. Code elsewhere asks these functions what the database can do and
never tests ``connection.vendor`` itself, so a difference is explained, and changed, in one place.
"""
from __future__ import annotations

from collections.abc import Sequence


def _postgresql(connection) -> bool:
    return connection.vendor == "postgresql"


def arrays(connection) -> bool:
    """Whether the database has array values: a list passed as one parameter (``= ANY(%s)``, the same SQL text
    for any count, an index condition), ``ARRAY(subquery)`` columns, ``UNNEST`` of array parameters."""
    return _postgresql(connection)


def among(connection, values: Sequence) -> tuple[str, list]:
    """Return a membership test for these values and its parameters: one array parameter where the database
    has arrays, a list of placeholders elsewhere."""
    if arrays(connection):
        return "= ANY(%s)", [list(values)]
    return f"IN ({', '.join(['%s'] * len(values))})", list(values)


def copies(connection) -> bool:
    """Whether rows can be sent with COPY (PostgreSQL, through psycopg's copy protocol from C)."""
    return _postgresql(connection)


def one_statement_writes(connection) -> bool:
    """Whether several writes can be one statement (data-modifying WITHs, atomic on their own): a save's few
    rows then cost one round trip instead of BEGIN, DELETE, INSERT, COMMIT."""
    return _postgresql(connection)


def samples_tables(connection) -> bool:
    """Whether a table can be read as a random sample with ordered-set aggregates over it (``TABLESAMPLE
    BERNOULLI``, ``percentile_disc``)."""
    return _postgresql(connection)


def inserts_by_executemany(connection) -> bool:
    """Whether many rows are best inserted by one ``executemany`` whose new ids are told by the last one
    (SQLite: run in C, and an AUTOINCREMENT table gives one transaction's new rows consecutive ids)."""
    return connection.vendor == "sqlite"


def lock_until_commit(connection, ids: Sequence[int]) -> None:
    """Serialise transactions holding one of these (64-bit) ids until the current transaction ends.

    PostgreSQL: one transaction-scoped advisory lock per id, taken in the given order (give them sorted, so
    two transactions sharing several ids cannot deadlock). SQLite has a single writer, whose lock the
    transaction already holds once it writes: nothing to do.
    """
    if not ids or not _postgresql(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [list(ids)])


def lock_if_free(connection, ids: Sequence[int], *, lock_timeout: str = "") -> bool:
    """Take these (64-bit) ids until the current transaction ends if no other transaction holds one; return whether
    they were taken (PostgreSQL's pg_try_advisory_xact_lock: never waits). ``lock_timeout``: how long the rest of the
    transaction waits for any other lock (in the same statement). SQLite: always taken (a single writer)."""
    if not ids or not _postgresql(connection):
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
            + (" CROSS JOIN (SELECT set_config('lock_timeout', %s, true)) AS timeout" if lock_timeout else ""),
            [list(ids), *([lock_timeout] if lock_timeout else [])],
        )
        return all(taken for (taken, *_rest) in cursor.fetchall())


def set_local(connection, **settings: str) -> None:
    """Tune the database for the rest of the current transaction (``SET LOCAL``, PostgreSQL's planner and
    memory settings such as work_mem); a database without such settings ignores them."""
    if not _postgresql(connection):
        return
    with connection.cursor() as cursor:
        for name, value in settings.items():
            cursor.execute(f"SET LOCAL {name} = '{value}'")
