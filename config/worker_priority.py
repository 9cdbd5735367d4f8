"""Run a Celery worker, and the PostgreSQL backends serving it, below the web's CPU priority (WORKER_CPU_PRIORITY).

On a machine that serves the web too, a request waits whenever a background task holds a core it needs, and the
request's p95 is made of those waits (issue 15: the load's tails come from the scan, the figures' refreshes and the
merges sharing 2 cores with gunicorn). So the workers run at a lower priority, set in the worker (Procfile.prod):
- ``idle`` (the bulk queue: the scan, index builds, counts_rebuild): Linux's SCHED_IDLE class, which runs only on
  a core nothing else wants and is preempted at once when a request's thread wakes up. ``nice 10`` leaves a task
  of ordinary class that still gets a tenth of a core's share and finishes its time slice first: with 3 CPU-bound
  processes beside a probe of 5 queries and 1 ms of Python (bench/bench_priority.py), the probe's p95 was 12 ms
  alone, 39 ms beside them at nice 10 and 28 ms at SCHED_IDLE (bench/README.md, 2026-12-06). Where SCHED_IDLE does
  not exist the worker takes nice 19.
- a number (the interactive queue: merges, undos, 5; the figures queue: the refreshes, 5): that niceness. Merges
  hold row locks a manager's save may wait for, so they keep an ordinary class, only below the web's.

The process's children (prefork pool) inherit it. The SQL a worker sends runs in a PostgreSQL backend at the
server's priority, and at 1,000,000 customers the scan's join and counts_rebuild spend more time there than in
Python (counts_rebuild: 127 s of SQL, 55 s of Python), so each backend the worker connects to is given the same
priority, once per connection, where it can be: the database on this host (the pid is a process here, checked to
be PostgreSQL) and the right to (root, CAP_SYS_NICE, or the postgres user for a niceness). Anywhere else the
backends keep theirs, logged once: PostgreSQL has no priority per session, and a database server of its own does
not share its cores with the web. The worker's sessions run no parallel query (max_parallel_workers_per_gather
0): parallel workers are processes of the postmaster at its priority, and a background query spread over every
core is what a request waits behind.
"""
from __future__ import annotations

import logging
import os
import weakref

from django.conf import settings
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

IDLE = "idle"
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}
# The driver connections done (a pool lends the same ones again and again) and whether the backends can be set.
_done: weakref.WeakSet = weakref.WeakSet()
_state = {"backends": True}


def priority_set(pid: int, priority: str) -> None:
    """Give process `pid` (0: this one) the priority: IDLE (SCHED_IDLE, or nice 19 where it does not exist) or a
    niceness. Raise OSError when not allowed."""
    if priority == IDLE:
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
            return
        priority = "19"
    os.setpriority(os.PRIO_PROCESS, pid, int(priority))


def worker_lower_priority(**kwargs) -> None:
    """Lower this worker process (and the pool it forks) to WORKER_CPU_PRIORITY (Celery's worker_init receiver)."""
    priority = settings.WORKER_CPU_PRIORITY
    if priority:
        priority_set(0, priority)


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
    """Give a new connection's backend WORKER_CPU_PRIORITY and no parallel query (the connection_created
    receiver; nothing unless the setting is given)."""
    priority = settings.WORKER_CPU_PRIORITY
    if not priority or connection.vendor != "postgresql" or connection.connection in _done:
        return
    _done.add(connection.connection)
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
    if not _state["backends"]:
        return
    pid = connection.connection.info.backend_pid
    if not (_local(connection) and _is_postgres(pid)):
        _state["backends"] = False
        logger.info("WORKER_CPU_PRIORITY: the database is not on this host; its backends keep their priority")
        return
    try:
        priority_set(pid, priority)
    except OSError as error:
        _state["backends"] = False
        logger.info("WORKER_CPU_PRIORITY: PostgreSQL's backends keep their priority (%s)", error)


def connect() -> None:
    """Connect the receivers (config.celery): the worker's process at start, its database sessions as opened."""
    from celery.signals import worker_init

    worker_init.connect(worker_lower_priority, weak=False, dispatch_uid="config.worker_priority.worker")
    connection_created.connect(backend_lower_priority, dispatch_uid="config.worker_priority.backend")
