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
        # psycopg_pool's public way to give the check is its constructor's `check` (3.2 and later; 3.3 installed),
        # but Django 5.2 builds the pool itself, passing check= (psycopg's empty query or None) together with
        # OPTIONS["pool"], so a "check" there fails with "got multiple values for keyword argument 'check'".
        # Building the pool here instead would copy Django's pool property and lean on two of its private names
        # (_connection_pools, _configure_connection) to spare one of psycopg_pool's. So the pool keeps the check
        # it calls in getconn() as `_check` (3.2 to 3.3), read without a default: a psycopg_pool that renamed it
        # fails at the first connection (AttributeError) rather than lending unchecked connections.
        # tests/test_production_settings.py reads the check back from the pool production builds.
        if pool is not None and pool._check is None:
            pool._check = check_idle_socket
        return pool
