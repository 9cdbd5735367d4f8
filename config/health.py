"""Health and readiness endpoints for load balancers, orchestrators and monitoring.

`/healthz`: everything the system needs, checked now: the database answers, the broker accepts a connection, no
migration is waiting. `/readyz`: this web process can serve requests: the database answers and the schema is
current; a broker outage only delays merges and scans, so it does not take the web out of rotation. Both answer
200 with `{"status": "ok", "checks": {...}}`, or 503 naming what failed. No login, no session, no database
write; the answer is never cached.
"""
from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# How long the broker may take to accept a connection before it counts as down.
BROKER_TIMEOUT_SECONDS = 2.0

# Once the schema is current it stays so for the life of the process (a deploy migrates, then restarts);
# checking the migration graph costs tens of milliseconds, so it is done until it first passes.
_migrations_current = False


def database_check() -> str | None:
    """Return None when the database answers a query, else what went wrong."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure is the answer, never a 500
        return f"{type(error).__name__}: {error}".strip()
    return None


def migrations_check() -> str | None:
    """Return None when every migration is applied, else the ones waiting."""
    global _migrations_current
    if _migrations_current:
        return None
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
        return f"{len(names)} unapplied: {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}"
    _migrations_current = True
    return None


def broker_check() -> str | None:
    """Return None when the Celery broker accepts a connection, else what went wrong."""
    from config.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
            )
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip()
    return None


def _answer(checks: dict) -> JsonResponse:
    results = {name: check() for name, check in checks.items()}
    failed = {name: error for name, error in results.items() if error is not None}
    body = {
        "status": "fail" if failed else "ok",
        "checks": {name: ("fail" if name in failed else "ok") for name in results},
    }
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


@never_cache
@require_GET
def healthz(request):
    return _answer({"database": database_check, "broker": broker_check, "migrations": migrations_check})


@never_cache
@require_GET
def readyz(request):
    return _answer({"database": database_check, "migrations": migrations_check})
