#!/usr/bin/env python
"""Benchmark the CSV import: generate a customers CSV (100,000 rows by default), import it, print the figures.

Runs standalone: `.venv/bin/python bench/bench_import.py [--rows N] [--via engine|resource]`. It uses a throwaway
SQLite database in a temporary folder, migrated first, unless DATABASE_URL names another (empty) database.

`--via resource` imports the same file through the admin's CustomerResource (django-import-export) set up as
fast as it goes: `use_bulk`, `skip_diff`, no model validation, batches of IMPORT_BATCH_SIZE, no dry run. That is
a lower bound of what a command built on the resources would cost: with `use_bulk` django-import-export writes
no many-to-many (tags) and calls after_save_instance before the records have ids (no phones, emails, handles),
and sends no records_bulk_saved (no duplicate keys). It answers whether the command could be built on the
resources at its present speed.
"""
from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _local import WITHOUT_INDEX_HELP, setup_empty_database  # noqa: E402  (bench/ is the script's own folder)

FIRST_NAMES = ("Иван", "Анна", "Пётр", "Ольга", "John", "Mary", "Klaus", "Greta", "Алексей", "Emily")
LAST_NAMES = ("Петров", "Смирнова", "Иванов", "Кузнецова", "Smith", "Brown", "Müller", "Schmidt", "Волков", "Lee")
POSITIONS = ("Director", "Buyer", "Менеджер", "Accountant", "CTO", "", "")
TAGS = ("vip", "b2b", "retail", "newsletter", "")


def generate_csv(path: Path, rows: int, *, seed: int = 1) -> None:
    """Write a realistic customers file: phones in several forms, emails, companies, tags, a custom column."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([
            "external_id", "first_name", "last_name", "position", "birthday", "phone", "email", "company_name",
            "tags", "telegram", "source", "loyalty_card",
        ])
        for n in range(rows):
            phone = f"+7 9{n // 10**6 % 100:02d} {n // 1000 % 1000:03d}-{n // 10 % 100:02d}-{n % 10}{rng.randint(0, 9)}"
            if n % 3 == 0:
                phone = "8 (9" + phone[4:6] + ") " + phone[7:]
            if n % 10 == 0:
                phone += f"; +1 415 555 {n % 10000:04d}"
            year, month, day = 1950 + n % 50, 1 + n % 12, 1 + n % 28
            birthday = f"{year}-{month:02d}-{day:02d}" if n % 2 else f"{day:02d}.{month:02d}.{year}"
            if n % 4 == 0:
                birthday = ""
            writer.writerow([
                f"bench-{n}",
                rng.choice(FIRST_NAMES),
                rng.choice(LAST_NAMES),
                rng.choice(POSITIONS),
                birthday,
                phone,
                f"person{n}@example.com",
                f"Company {n % 2000} LLC" if n % 3 else "",
                rng.choice(TAGS),
                f"@user{n}" if n % 5 == 0 else "",
                rng.choice(("website", "exhibition", "referral")),
                f"LC-{n:07d}" if n % 2 else "",
            ])


def import_via_resource(csv_path: Path):
    """Import the file through CustomerResource with use_bulk and skip_diff; return the import's Result."""
    from crm.importing.files import FileLimits, read_csv
    from crm.importing.forms import dataset_of
    from crm.importing.resources import CustomerResource
    from crm.importing import IMPORT_BATCH_SIZE

    class BulkCustomerResource(CustomerResource):
        class Meta(CustomerResource.Meta):
            use_bulk = True
            skip_diff = True
            clean_model_instances = False
            batch_size = IMPORT_BATCH_SIZE

    limits = FileLimits(max_bytes=2**40, max_unpacked_bytes=2**40, max_rows=10**9, max_columns=1000)
    dataset = dataset_of(*read_csv(csv_path.read_bytes(), limits))
    return BulkCustomerResource().import_data(dataset, dry_run=False, raise_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--without-index", action="store_true", help=WITHOUT_INDEX_HELP)
    parser.add_argument("--via", choices=("engine", "resource"), default="engine",
                        help="the import_csv engine (default) or the admin's django-import-export resource")
    parser.add_argument("--duplicates", choices=("skip", "update", "create"), default="create",
                        help="the engine's duplicate policy (default create: created and flagged)")
    parser.add_argument("--twice", action="store_true",
                        help="import the file a second time (every row a duplicate) and time that import")
    args = parser.parse_args()

    workdir = setup_empty_database("mergewise-bench-import-", without_index=args.without_index)
    from django.conf import settings
    from django.db import connection

    from crm.models import Company, Customer, Phone
    from crm.importing import IMPORT_BATCH_SIZE, records_import_csv
    from crm.models import Email, MessengerHandle

    csv_path = workdir / "customers.csv"
    started = time.monotonic()
    generate_csv(csv_path, args.rows)
    generated = time.monotonic() - started

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started, cpu_started = time.monotonic(), time.process_time()
        if args.via == "engine" and args.twice:
            records_import_csv(entity="customer", path=csv_path, policy=args.duplicates)
            csv_path.write_text(csv_path.read_text(encoding="utf-8").replace(",bench-", ",again-").replace(
                "\nbench-", "\nagain-"), encoding="utf-8")
            queries = 0
            started, cpu_started = time.monotonic(), time.process_time()
            report = records_import_csv(entity="customer", path=csv_path, policy=args.duplicates)
        elif args.via == "engine":
            report = records_import_csv(entity="customer", path=csv_path, policy=args.duplicates)
        else:
            result = import_via_resource(csv_path)
        seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started

    print(f"database:        {connection.vendor} ({connection.settings_dict['NAME']}), DEBUG={settings.DEBUG}"
          + (", duplicate index disconnected" if args.without_index else ""))
    size = csv_path.stat().st_size / 2**20
    print(f"file:            {args.rows:,} rows, {size:.1f} MiB (generated in {generated:.1f} s)")
    print(f"via:             {args.via}")
    print(f"batch size:      {IMPORT_BATCH_SIZE}")
    print(f"created:         {Customer.objects.count():,} customers, {Company.objects.count():,} companies, "
          f"{Phone.objects.count():,} phones, {Email.objects.count():,} emails, "
          f"{MessengerHandle.objects.count():,} handles, {Customer.tags.through.objects.count():,} tag links")
    if args.via == "engine":
        print(f"skipped:         {len(report.skipped):,}")
        print(f"duplicates:      policy {report.policy}: {report.flagged:,} created and flagged, {report.updated:,} "
              f"updated, {report.duplicates_skipped:,} skipped" + (" (second import of the file)" if args.twice else ""))
    else:
        print(f"skipped:         {len(result.invalid_rows) + len(result.row_errors()):,}")
    print(f"total:           {seconds:.1f} s ({cpu_seconds:.1f} s of CPU in this process; the rest is waiting for the "
          f"database or for a CPU on a busy machine)")
    print(f"rows per second: {args.rows / seconds:,.0f}")
    print(f"queries:         {queries:,} ({queries / max(1, args.rows / IMPORT_BATCH_SIZE):.0f} per batch)")
    if args.via == "engine":
        assert report.created == Customer.objects.count() and Company.objects.count() == report.companies_created


if __name__ == "__main__":
    main()
