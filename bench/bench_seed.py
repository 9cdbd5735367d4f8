#!/usr/bin/env python
"""Benchmark the demo base: time `seed_demo --customers 10000` and print what it made.

Runs standalone: `.venv/bin/python bench/bench_seed.py [--customers N] [--seed S]`. It uses a throwaway SQLite
database in a temporary folder, migrated first, unless DATABASE_URL names another (empty) database.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _local import WITHOUT_INDEX_HELP, setup_empty_database  # noqa: E402  (bench/ is the script's own folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--without-index", action="store_true", help=WITHOUT_INDEX_HELP)
    args = parser.parse_args()

    setup_empty_database("mergewise-bench-seed-", without_index=args.without_index)
    from django.conf import settings
    from django.db import connection

    from crm.models import Email, MessengerHandle, Phone
    from crm.services.demo import demo_seed

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started, cpu_started = time.monotonic(), time.process_time()
        report = demo_seed(customers=args.customers, seed=args.seed)
        seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started

    contacts = Phone.objects.count() + Email.objects.count() + MessengerHandle.objects.count()
    print(f"database:        {connection.vendor} ({connection.settings_dict['NAME']}), DEBUG={settings.DEBUG}"
          + (", duplicate index disconnected" if args.without_index else ""))
    print(f"customers:       {report.customers:,} ({sum(report.duplicates.values()):,} planted duplicates: "
          + ", ".join(f"{kind} {count}" for kind, count in sorted(report.duplicates.items())) + ")")
    print(f"also:            {report.companies:,} companies, {report.leads:,} leads, {report.deals:,} deals, "
          f"{report.orders:,} orders ({report.order_items:,} items), {report.timeline:,} timeline rows, "
          f"{contacts:,} phones/emails/handles")
    print(f"total:           {seconds:.1f} s ({cpu_seconds:.1f} s of CPU in this process; the rest is waiting for the "
          f"database or for a CPU on a busy machine)")
    print(f"customers/s:     {report.customers / seconds:,.0f}")
    print(f"queries:         {queries:,}")


if __name__ == "__main__":
    main()
