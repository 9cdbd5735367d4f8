"""Check a pooled PostgreSQL connection before lending it, without a round trip to the server.

Django's check for a pool (CONN_HEALTH_CHECKS: psycopg_pool's `check_connection`) sends an empty query each time a
request takes a connection: one more round trip for every request, and under load each round trip waits for the
GIL and for a core (an intake post made 14 of them, bench/README.md 2026-12-06, branch wt-intake). An idle
connection receives nothing from the server unless the server ended it: a restart, `pg_terminate_backend` or an
idle timeout sends an error and closes the socket. So the socket is polled instead: anything to read on an idle
connection, or a connection psycopg already knows to be closed or broken, is refused and the pool opens another.

What this does not see, and the empty query would: a server gone without closing the socket (a host down, a
network cut). The first query then fails as it would on a connection broken mid-request, the request gets an error,
and Django drops the connection (`errors_occurred`), so the next request gets a new one.
"""
from __future__ import annotations

import select

import psycopg


def check_idle_socket(connection: psycopg.Connection) -> None:
    """Raise when the pooled connection is closed, broken or was sent something while idle (the server ended it)."""
    if connection.closed or connection.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _writable, _failed = select.select([connection.fileno()], [], [], 0)
    if readable:
        # Closed here, so the pool discards it when it takes it back (a connection that looks idle would be put
        # back and lent again) and opens another.
        connection.close()
        raise psycopg.OperationalError("the server sent something to an idle connection: it ended it")
