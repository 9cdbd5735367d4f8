#!/usr/bin/env python
"""Count an intake request's round trips to PostgreSQL and Redis on the load benchmark's base, and time them.

Under load every round trip costs more than its SQL: the thread gives up the GIL (another thread of its gunicorn
process may be rendering a card and holds it for up to a switch interval) and its PostgreSQL backend waits for a
core. So the figure that matters for the intake's tail is the number of trips, beside its CPU time. This script
posts the load's mix of leads (bench/locust_load.py: three in four new people, one in four returning customers)
through the whole Django stack in-process, with production settings (a psycopg pool per process, the broker a
real Redis), and prints per kind: the queries, the commits, the pool's health checks, the Redis commands, the
wall time, the thread's CPU time and the SQL time; then the statements of one request of each kind.

`BENCH_DB_NAME=h_mine_1m .venv/bin/python bench/bench_intake_trips.py [--requests N]` on a copy of `bench_scored`
(`createdb -T bench_scored h_mine_1m`); the broker is Redis database 13 (BENCH_REDIS_URL overrides). Nothing
consumes the queue: the refresh messages this sends are left there (one per entity at most) and purged at the end.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER, percentile  # noqa: E402  (bench/ is the script's own folder)

DB_NAME = os.environ.get("BENCH_DB_NAME", "")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--show", action="store_true", help="print the statements of one request of each kind")
    args = parser.parse_args()
    if not DB_NAME or DB_NAME.startswith(("bench_prod", "bench_scored")):
        sys.exit("Set BENCH_DB_NAME to a copy of bench_scored (this script writes leads).")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": f"{SERVER}/{DB_NAME}",
            "CELERY_BROKER_URL": REDIS,
            "CELERY_RESULT_BACKEND": REDIS,
            "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
            "DJANGO_SECURE_SSL": "false",
            "LOG_LEVEL": "ERROR",
        }
    )
    # The pool's health check (CONN_HEALTH_CHECKS) is a round trip each time a request takes a connection; the
    # pool takes the function when it is made, so it is counted from before Django starts.
    from psycopg_pool import ConnectionPool

    counts = {"queries": 0, "commits": 0, "checks": 0, "redis": 0, "sql_s": 0.0}
    statements: list[tuple[str, float]] = []
    check = ConnectionPool.check_connection

    def counted_check(conn):
        counts["checks"] += 1
        statements.append(("pool check", 0.0))
        return check(conn)

    ConnectionPool.check_connection = staticmethod(counted_check)
    import django

    django.setup()
    import logging

    logging.getLogger("mergewise.request").setLevel(logging.WARNING)
    from django.db import connection
    from django.db.backends.postgresql.base import DatabaseWrapper
    from django.test import Client

    from bench_load import build_intake
    from crm.models import Customer

    token = build_intake(secrets.token_urlsafe(12))
    customers = Customer._base_manager.count()

    def traced(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            counts["queries"] += 1
            counts["sql_s"] += elapsed
            statements.append((" ".join(sql.split())[:150], elapsed * 1000))

    commit = DatabaseWrapper._commit

    def counted_commit(self):
        counts["commits"] += 1
        started = time.perf_counter()
        try:
            return commit(self)
        finally:
            statements.append(("COMMIT", (time.perf_counter() - started) * 1000))

    DatabaseWrapper._commit = counted_commit
    # Every Redis command a message costs (the publish, the queue's priority lookups) goes through here.
    import redis

    execute_command = redis.client.Redis.execute_command

    def counted_redis(self, *a, **k):
        counts["redis"] += 1
        statements.append((f"REDIS {a[0]}", 0.0))
        return execute_command(self, *a, **k)

    redis.client.Redis.execute_command = counted_redis
    pipeline_execute = redis.client.Pipeline.execute

    def counted_pipeline(self, *a, **k):
        counts["redis"] += 1
        statements.append(("REDIS pipeline " + " ".join(str(c[0][0]) for c in self.command_stack), 0.0))
        return pipeline_execute(self, *a, **k)

    redis.client.Pipeline.execute = counted_pipeline

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    rng = random.Random(time.time_ns())
    run = int(time.time())

    def body(kind: str) -> dict:
        if kind == "returning":
            i = rng.randrange(1, customers + 1)
            return {"name": "Back Again", "phones": [f"+7912{i:07d}"], "emails": [f"customer{i}@example.com"]}
        n = rng.randrange(10**7)
        return {"name": "New Person", "phones": [f"+7916{n:07d}"], "emails": [f"new{run}.{n}@example.net"]}

    for _index in range(20):  # warm-up: the pool, the configuration snapshot, the learned model's loader
        client.post("/api/leads/", body("new"), content_type="application/json")
        connection.close()
    results: dict[str, list[dict]] = {"new": [], "returning": []}
    shown: dict[str, list] = {}
    with connection.execute_wrapper(traced):
        for _index in range(args.requests):
            kind = "returning" if rng.random() < 0.25 else "new"
            counts.update(queries=0, commits=0, checks=0, redis=0, sql_s=0.0)
            statements.clear()
            started, started_cpu = time.perf_counter(), time.thread_time()
            response = client.post("/api/leads/", body(kind), content_type="application/json")
            # The test client keeps the connection across requests; a gunicorn thread hands it back to the pool at
            # the end of each (CONN_MAX_AGE 0 with a pool) and takes one again with the next request.
            connection.close()
            wall, cpu = time.perf_counter() - started, time.thread_time() - started_cpu
            if response.status_code not in (200, 201):
                sys.exit(f"{response.status_code}: {response.content[:500]!r}")
            results[kind].append({**counts, "wall_ms": wall * 1000, "cpu_ms": cpu * 1000,
                                  "decision": response.json()["decision"]})
            shown.setdefault(f"{kind} ({response.json()['decision']})", list(statements))
    from config.celery import app

    app.control.purge()
    print(f"database: {DB_NAME} ({customers:,} customers), broker {REDIS}; {args.requests} requests in-process, "
          f"production settings; load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'kind':<10} {'n':>4} {'queries':>8} {'commits':>8} {'checks':>7} {'redis':>6} {'trips':>6} "
          f"{'wall p50/p95 ms':>16} {'CPU p50/p95 ms':>15} {'SQL p50 ms':>10}")
    for kind, rows in results.items():
        if not rows:
            continue

        def mean(name: str) -> float:
            return statistics.fmean(row[name] for row in rows)

        # A transaction's BEGIN is a round trip of its own (psycopg 3 sends it before the first statement).
        trips = mean("queries") + 2 * mean("commits") + mean("checks") + mean("redis")
        walls, cpus = [row["wall_ms"] for row in rows], [row["cpu_ms"] for row in rows]
        print(f"{kind:<10} {len(rows):>4} {mean('queries'):>8.2f} {mean('commits'):>8.2f} {mean('checks'):>7.2f} "
              f"{mean('redis'):>6.2f} {trips:>6.2f} {statistics.median(walls):>7.1f} / {percentile(walls, .95):>6.1f} "
              f"{statistics.median(cpus):>6.1f} / {percentile(cpus, .95):>6.1f} "
              f"{statistics.median(row['sql_s'] * 1000 for row in rows):>10.1f}")
    if args.show:
        for kind, listed in shown.items():
            print(f"\n{kind}:")
            for text, ms in listed:
                print(f"  {ms:6.2f} ms  {text}")


if __name__ == "__main__":
    main()
