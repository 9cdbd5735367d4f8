"""The pool lends no connection the server has ended, and checks one without a round trip (config/db_pool.py)."""
import time

import pytest
from django.db import connection

from config.db_pool import check_idle_socket

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the production pool is PostgreSQL's")


def _conninfo() -> str:
    params = connection.get_connection_params()
    return " ".join(
        f"{name}={params[key]}" for name, key in (("host", "host"), ("port", "port"), ("user", "user"),
                                                 ("password", "password"), ("dbname", "dbname"))
        if params.get(key)
    )


def _terminate(pid: int) -> None:
    """End a backend as a restart or an administrator would, and wait until it is gone."""
    import psycopg

    with psycopg.connect(_conninfo(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _attempt in range(100):
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            time.sleep(0.02)


@pytest.mark.django_db
def test_check_idle_socket_refuses_a_connection_the_server_ended_and_the_pool_opens_another():
    from psycopg_pool import ConnectionPool

    # Given a pool checked by the socket, with one connection lent once and given back
    pool = ConnectionPool(_conninfo(), min_size=1, max_size=1, check=check_idle_socket, open=True)
    try:
        with pool.connection() as first:
            ended = first.info.backend_pid
        # and the same connection, still healthy, lent again (the check let it through)
        with pool.connection() as again:
            assert again.info.backend_pid == ended
        # When the server ends it while it sits idle in the pool (a restart, pg_terminate_backend)
        _terminate(ended)
        # Then the next request gets a working connection, not the ended one and not an error
        with pool.connection() as lent:
            assert lent.execute("SELECT 1").fetchone() == (1,)
            assert lent.info.backend_pid != ended
    finally:
        pool.close()


@pytest.mark.django_db
def test_check_idle_socket_sends_nothing_to_the_server():
    import psycopg
    from psycopg_pool import ConnectionPool

    def last_active(admin, pid: int):
        return admin.execute("SELECT state_change FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0]

    # Given an idle connection, and the moment its backend last changed state as the server sees it
    with psycopg.connect(_conninfo(), autocommit=True) as admin, psycopg.connect(_conninfo(), autocommit=True) as idle:
        pid = idle.info.backend_pid
        before = last_active(admin, pid)
        # When it is checked, then it passes and its backend did nothing (no round trip)
        check_idle_socket(idle)
        assert last_active(admin, pid) == before
        # while psycopg's own check (Django's, with CONN_HEALTH_CHECKS) is a query the backend runs
        ConnectionPool.check_connection(idle)
        assert last_active(admin, pid) > before
        # and a connection closed on our side is refused
        idle.close()
        with pytest.raises(psycopg.OperationalError):
            check_idle_socket(idle)
