"""A background worker's PostgreSQL backends run at its own low priority and without parallel query
(DATABASE_BACKEND_NICE, config/db_priority.py), so its SQL yields the cores to the web's."""
import os

import pytest
from django.db import connection, connections

from config.db_priority import LOCAL_HOSTS


def _backend(nice: int, settings) -> tuple[int, str]:
    """Open a new connection as a process started with DATABASE_BACKEND_NICE=nice; return its backend's
    niceness and its parallel-query setting."""
    settings.DATABASE_BACKEND_NICE = nice
    worker = connections.create_connection("default")
    try:
        worker.ensure_connection()
        with worker.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            parallel = cursor.fetchone()[0]
        return os.getpriority(os.PRIO_PROCESS, worker.connection.info.backend_pid), parallel
    finally:
        worker.close()


@pytest.mark.django_db
def test_db_priority_backend_of_a_background_worker_yields_to_requests(settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's backends are processes of their own")
    if (connection.settings_dict.get("HOST") or "") not in LOCAL_HOSTS or os.geteuid() != 0:
        pytest.skip("renicing another user's process needs the database on this host and root")
    # given a web process (no setting): its backend keeps the server's priority and parallel query
    nice, parallel = _backend(0, settings)
    assert nice == 0 and parallel != "0"
    # when a worker started with DATABASE_BACKEND_NICE=7 connects, its backend runs at 7 without parallel query
    assert _backend(7, settings) == (7, "0")
