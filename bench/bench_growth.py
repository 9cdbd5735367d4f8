#!/usr/bin/env python
"""Measure what grows with the base: match-key rows per record, table and index sizes, scan time per worker.

Runs standalone: `.venv/bin/python bench/bench_growth.py [--sizes 100000 300000 1000000]`. For each size it
(re)creates its own database `bench_growth` on 127.0.0.1:5432 as user postgres (BENCH_PG_URL overrides), fills
it by COPY with bench_scan_workers.py's customers (a phone and an email each, planted duplicates) and their
match keys, reads the sizes from PostgreSQL (`pg_total_relation_size`, `pg_indexes_size`, per index
`pg_relation_size`), then runs one full chunked scan in this process (`review.scan_execute`: the plan, every
chunk and the join, as one worker would) and reports its time. The database is dropped at the end. The figures
feed docs/SCALING.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER, create_database  # noqa: E402  (bench/ is the script's own folder)

DB_NAME = "bench_growth"  # never the test databases
TABLES = ["crm_customer", "crm_phone", "crm_email", "dedup_matchkey"]
MB = 1024 * 1024


def measure(size: int) -> dict:
    """Build a base of `size` customers in a fresh database and return its figures."""
    from django.core.management import call_command
    from django.db import connection, connections

    connections.close_all()
    create_database(DB_NAME, reuse=False)

    call_command("migrate", verbosity=0)
    from bench_scan_workers import build_base  # the scan benchmark's base

    from dedup.models import ScanChunk, ScanRun
    from dedup.review import scan_execute

    built = build_base(size)
    figures = {"customers": size, "build_seconds": built["seconds"], "keys": built["keys"]}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)", [table, table, table]
            )
            total, heap, indexes = cursor.fetchone()
            figures[table] = {"total": total, "heap": heap, "indexes": indexes}
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'dedup_matchkey'::regclass ORDER BY 2 DESC"
        )
        figures["matchkey_indexes"] = cursor.fetchall()
        cursor.execute("SELECT kind, COUNT(*) FROM dedup_matchkey GROUP BY kind ORDER BY kind")
        figures["keys_by_kind"] = cursor.fetchall()
        cursor.execute("SELECT pg_database_size(current_database())")
        figures["database"] = cursor.fetchone()[0]
    started = time.monotonic()
    run = scan_execute(entities=["customer"], trigger=ScanRun.Trigger.COMMAND)
    figures["scan_seconds"] = time.monotonic() - started
    chunks = list(ScanChunk.objects.filter(run=run))
    figures["chunk_seconds"] = sum(chunk.seconds or 0 for chunk in chunks)
    figures["chunks"] = len(chunks)
    figures["groups"] = run.stats["customer"].get("groups")
    figures["load"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    args = parser.parse_args()
    create_database(DB_NAME, reuse=False)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"{SERVER}/{DB_NAME}",
            "CELERY_TASK_ALWAYS_EAGER": "true",
        }
    )
    import django

    django.setup()
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        sys.exit("The growth benchmark needs PostgreSQL.")
    results = []
    for size in args.sizes:
        results.append(measure(size))
        row = results[-1]
        print(f"{size:,} customers: built in {row['build_seconds']:.0f} s, scanned in {row['scan_seconds']:.1f} s, "
              f"load {row['load']:.1f}", flush=True)
    connections.close_all()

    print(f"\n{'customers':>10} {'keys/rec':>8} {'keys MB':>8} {'key idx MB':>10} {'idx MB/1M':>9} "
          f"{'customer+contacts MB':>20} {'db MB':>7} {'scan s':>7} {'chunks s':>8} {'s per 1M':>8} {'groups':>8}")
    for row in results:
        n = row["customers"]
        keys = row["dedup_matchkey"]
        contacts = sum(row[table]["total"] for table in TABLES if table != "dedup_matchkey")
        print(f"{n:>10,} {row['keys'] / n:>8.2f} {keys['total'] / MB:>8.0f} {keys['indexes'] / MB:>10.0f} "
              f"{keys['indexes'] / MB / (n / 1e6):>9.0f} {contacts / MB:>20.0f} {row['database'] / MB:>7.0f} "
              f"{row['scan_seconds']:>7.1f} {row['chunk_seconds']:>8.1f} {row['scan_seconds'] / (n / 1e6):>8.1f} "
              f"{row['groups'] or 0:>8,}")
    last = results[-1]
    print(f"\nmatch-key indexes at {last['customers']:,}: "
          + ", ".join(f"{name} {size / MB:.0f} MB" for name, size in last["matchkey_indexes"]))
    print("match keys by kind: " + ", ".join(f"{kind} {count:,}" for kind, count in last["keys_by_kind"]))
    for table in TABLES:
        sizes = last[table]
        print(f"{table:<16} total {sizes['total'] / MB:7.0f} MB (heap {sizes['heap'] / MB:.0f}, "
              f"indexes {sizes['indexes'] / MB:.0f})")
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
