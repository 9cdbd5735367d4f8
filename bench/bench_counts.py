#!/usr/bin/env python
"""Benchmark the stored duplicate figures on PostgreSQL: the customer change list with "Has duplicates" on.

Runs standalone: `.venv/bin/python bench/bench_counts.py [--customers N] [--reuse]`.
It uses its own database `bench_counts` on 127.0.0.1:5432 (user postgres; BENCH_PG_URL overrides the server),
built the way bench/bench_scan.py builds its base (COPY of companies, customers, phones, emails and handles with
planted duplicates and office switchboards, the engine's bulk index path), then the stored figures
(`counts_rebuild`, timed) and ANALYZE.

Prints the time of the rebuild, and for the admin change list of customers (a superuser, the test client, no
browser): the time and queries of the page with "Has duplicates" on, off and "No duplicates", median of 7 after a
warm-up, and of `stored_counts` for a page of 100.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scan  # noqa: E402  (the base builder shared with the scan benchmark)

bench_scan.DB_NAME = "bench_counts"  # a database of its own: the scan and finder benchmarks keep theirs
BUILD_STEP = 100_000
RUNS = 7


def timed(call) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        began = time.perf_counter()
        call()
        seconds = time.perf_counter() - began
    return seconds * 1000, len(queries)


def median_of(call) -> tuple[float, int]:
    call()  # warm-up
    results = [timed(call) for _ in range(RUNS)]
    return statistics.median(ms for ms, _ in results), max(count for _, count in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="Keep a base of the right size left by an earlier run.")
    args = parser.parse_args()

    existed = bench_scan.create_database(bench_scan.DB_NAME, reuse=args.reuse)
    bench_scan.setup_django()
    from django.core.management import call_command
    from django.test import Client

    from crm.models import Customer
    from dedup.engine.counts import counts_rebuild, stored_counts
    from dedup.models import DuplicatePair

    call_command("migrate", verbosity=0)
    if not (existed and Customer.objects.count() == args.customers):
        bench_scan.reset_base()
        DuplicatePair.objects.all().delete()
        companies = bench_scan.companies_for(args.customers)
        for start in range(1, args.customers + 1, BUILD_STEP):
            stop = min(args.customers + 1, start + BUILD_STEP)
            print(f"built {stop - 1:,} customers ({bench_scan.build_range(start, stop, companies)})",
                  file=sys.stderr, flush=True)
        bench_scan.analyze()
        began = time.monotonic()
        pairs = counts_rebuild(entity="customer")
        print(f"counts_rebuild: {pairs:,} pairs in {time.monotonic() - began:.1f} s", flush=True)
        bench_scan.analyze()

    from django.contrib.auth import get_user_model

    admin, _created = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(admin)
    url = "/admin/crm/customer/"
    holders = DuplicatePair.objects.filter(entity="customer").values("record_id").distinct().count()
    print(f"\nCustomer change list on PostgreSQL, {Customer.objects.count():,} customers, {holders:,} with duplicates")
    for label, params in (("filter off", {}), ("Has duplicates", {"has_duplicates": "yes"}),
                          ("No duplicates", {"has_duplicates": "no"})):
        ms, queries = median_of(lambda params=params: client.get(url, params).status_code == 200 or sys.exit(1))
        print(f"  {label:<15} {ms:8.1f} ms (median of {RUNS}), {queries} queries")
    page = list(Customer.objects.order_by("-pk").values_list("pk", flat=True)[:100])
    ms, queries = median_of(lambda: stored_counts(Customer, page))
    print(f"  stored_counts for a page of 100: {ms:.2f} ms, {queries} query")


if __name__ == "__main__":
    main()
