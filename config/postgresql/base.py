"""Django's PostgreSQL backend, its pool checking a connection by its socket before lending it (config/db_pool.py).

Django builds the psycopg pool itself and gives it psycopg's check (an empty query) when CONN_HEALTH_CHECKS is on,
or none; it takes no other. So production names this backend (ENGINE "config.postgresql") with CONN_HEALTH_CHECKS
off, and the pool Django made gets the socket check here, once, before it is opened.
"""
from django.db.backends.postgresql import base

from config.db_pool import check_idle_socket


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # psycopg_pool keeps the check it calls in getconn() as `_check` (3.2 and later); tests/test_db_pool.py
        # checks that the pool production builds refuses a connection the server ended.
        if pool is not None and getattr(pool, "_check", None) is None:
            pool._check = check_idle_socket
        return pool
