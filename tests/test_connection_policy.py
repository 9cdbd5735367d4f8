"""The local connection policy under concurrency: 50 simultaneous requests at the threaded server on PostgreSQL all
succeed, and afterwards no pile of idle connections is left behind (issue 14, item 11)."""
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

CONCURRENT = 50
# Connections this test database may hold once the requests are done: the test's own, plus a few closing.
IDLE_AFTERWARDS_AT_MOST = 5


def connections_to_this_database() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT state, COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " GROUP BY state"
        )
        return {state or "none": count for state, count in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_leave_no_idle_connections(live_server):
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL's connections (pg_stat_activity)")
    barrier = threading.Barrier(CONCURRENT)

    def get(index: int) -> int:
        barrier.wait(timeout=30)
        # /readyz queries the database on every request (and reads the migration graph once).
        with urllib.request.urlopen(f"{live_server.url}/readyz", timeout=60) as response:
            return response.status

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        statuses = list(pool.map(get, range(CONCURRENT)))

    assert statuses == [200] * CONCURRENT
    idle = connections_to_this_database()
    assert sum(idle.values()) <= IDLE_AFTERWARDS_AT_MOST, idle
