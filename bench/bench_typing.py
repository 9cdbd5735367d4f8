#!/usr/bin/env python
"""Benchmark the warning while typing: how long the add form's duplicate check takes with 1,000,000 customers on
PostgreSQL (issue 13: at most 50 ms on the server).

Runs standalone: `.venv/bin/python bench/bench_typing.py [--customers N] [--requests N] [--reuse] [--database D]`.
It (re)creates its own database (`bench_typing` unless --database names another) on 127.0.0.1:5432 as user
postgres (BENCH_PG_URL overrides the server), fills it with COPY like bench_intake.py, builds the customers'
match-key index, then asks the admin's duplicates-check view what a manager would type: a phone of a customer in
another form, an email in other case, a name and company, and a phone nobody has. Through the whole stack
in-process (URL routing, session, admin permission check, the view, the finder), without an HTTP server.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import SERVER, create_database, percentile  # noqa: E402

TARGET_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario")
    parser.add_argument("--reuse", action="store_true", help="keep the base of an earlier run")
    parser.add_argument("--database", default="bench_typing", help="the benchmark's own database (dropped first)")
    args = parser.parse_args()

    reused = create_database(args.database, reuse=args.reuse)
    os.environ["DATABASE_URL"] = f"{SERVER}/{args.database}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from bench_intake import build_base
    from crm.models import Customer
    from dedup import registry
    from dedup.engine.index import rebuild
    from tests.factories import UserFactory

    setup_test_environment()
    if connection.vendor != "postgresql":
        sys.exit("The typing benchmark needs PostgreSQL.")
    call_command("migrate", verbosity=0)
    if not (reused and Customer.objects.count() >= args.customers):
        started = time.monotonic()
        build_base(customers=args.customers, leads=0)
        copied = time.monotonic() - started
        started = time.monotonic()
        rebuild(registry.get("customer"))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        indexed = time.monotonic() - started
        print(f"base: {args.customers:,} customers copied in {copied:.0f} s, indexed in {indexed:.0f} s")
    customers = Customer.objects.count()

    user = UserFactory(username=f"bench{time.time_ns()}", is_superuser=True)
    client = Client()
    client.force_login(user)
    url = reverse("admin:crm_customer_duplicates_check")
    rng = random.Random(time.time_ns())
    picks = rng.sample(range(1, customers + 1), args.requests * 3)
    names = Customer.objects.filter(pk__in=picks[args.requests * 2 :]).values_list("last_name", "first_name")
    names = list(names) or [("Petrov", "Ivan")]

    def params(scenario: str, index: int) -> dict:
        if scenario == "phone of a customer, national form":
            i = picks[index]
            return {"phones__number": f"8 912 {i // 10000 % 1000:03d} {i // 100 % 100:02d} {i % 100:02d}"}
        if scenario == "email of a customer, other case":
            return {"emails__address": f"CUSTOMER{picks[args.requests + index]}@example.COM"}
        if scenario == "common name and a company":
            last, first = names[index % len(names)]
            return {"last_name": last, "first_name": first, "company__name": "Acme LLC"}
        return {"phones__number": f"+7 916 {index:07d}", "emails__address": f"nobody{index}@example.net"}

    scenarios = [
        "phone of a customer, national form",
        "email of a customer, other case",
        "common name and a company",
        "nothing matches",
    ]
    for index in range(10):  # warm-up: connections, caches, compiled rules
        client.get(url, params("nothing matches", index))
    print(f"{customers:,} customers, {args.requests} requests per scenario, PostgreSQL, DEBUG off")
    print(f"{'scenario':38} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'found':>6}")
    worst_p95 = 0.0
    for scenario in scenarios:
        timings, found = [], 0
        for index in range(args.requests):
            started = time.perf_counter()
            response = client.get(url, params(scenario, index))
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            found += bool(response.json()["duplicates"])
        p95 = percentile(timings, 0.95)
        worst_p95 = max(worst_p95, p95)
        print(f"{scenario:38} {statistics.median(timings):8.1f} {p95:8.1f} {max(timings):8.1f} {found:6}")
    print(f"worst p95 {worst_p95:.1f} ms; target {TARGET_MS:.0f} ms: {'met' if worst_p95 <= TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
