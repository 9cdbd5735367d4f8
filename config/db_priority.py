"""Give the PostgreSQL backends of a background worker the worker's own low CPU priority.

`nice -n 10` lowers a Celery worker's Python, but the SQL it sends runs in a PostgreSQL backend process at the
server's priority. At 1,000,000 customers the scan's join and `counts_rebuild` spend more time in PostgreSQL than
in Python (counts_rebuild: 127 s of SQL against 55 s of Python, bench/README.md), and on a machine that also
serves the web that SQL took the cores from requests as if it were a request. With DATABASE_BACKEND_NICE set
(Procfile.prod: 10 for the bulk worker, 5 for the interactive one, as their own `nice`), a process renices each
backend it connects to, once per connection, where it can: the database on this host (the backend's pid is a
process here, checked to be PostgreSQL) and the right to (root, or the postgres user). Anywhere else it does
nothing and logs so once: PostgreSQL has no priority per session, and on a server of its own the database does not
share its cores with the web processes.

The same sessions run no parallel query (max_parallel_workers_per_gather = 0): parallel workers are processes of
the postmaster, at its priority, and a background query spread over every core is what a request waits behind.
"""
from __future__ import annotations

import logging
import os
import weakref

from django.conf import settings
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
# The driver connections done (a pool lends the same ones again and again) and whether renicing can work here.
_done: weakref.WeakSet = weakref.WeakSet()
_state = {"renice": True}


def _local(connection) -> bool:
    host = connection.settings_dict.get("HOST") or ""
    return host in LOCAL_HOSTS or host.startswith("/")  # a Unix socket's folder is this host too


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().startswith("postgres")
    except OSError:
        return False


def backend_lower_priority(sender, connection, **kwargs) -> None:
    """Renice the new connection's backend to DATABASE_BACKEND_NICE and turn off its parallel query (the
    connection_created receiver; does nothing unless the setting is given)."""
    nice = getattr(settings, "DATABASE_BACKEND_NICE", 0)
    if not nice or connection.vendor != "postgresql" or connection.connection in _done:
        return
    _done.add(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
    if not _state["renice"]:
        return
    pid = connection.connection.info.backend_pid
    if not (_local(connection) and _is_postgres(pid)):
        _state["renice"] = False
        logger.info("DATABASE_BACKEND_NICE: the database is not on this host; its backends keep their priority")
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError as error:
        _state["renice"] = False
        logger.info("DATABASE_BACKEND_NICE: cannot renice PostgreSQL's backends (%s); they keep their priority", error)


def connect() -> None:
    connection_created.connect(backend_lower_priority, dispatch_uid="config.db_priority")
