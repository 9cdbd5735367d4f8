#!/usr/bin/env python
"""Benchmark the change lists on PostgreSQL: customers, leads and deals with "Has duplicates" on, and the cards.

Runs standalone: `.venv/bin/python bench/bench_counts.py [--customers N] [--leads N] [--deals N] [--reuse]`.
It uses its own database `bench_counts` on 127.0.0.1:5432 (user postgres; BENCH_PG_URL overrides the server),
built the way bench/bench_scan.py builds its base (COPY of companies, customers, phones, emails and handles with
planted duplicates and office switchboards, the engine's bulk index path), then the stored figures
(`counts_rebuild`, timed) and ANALYZE.

Customers get creation dates spread over three years and a source (one in four none), as a live base has;
leads and deals (100,000 each by default) are COPYed with the same spread, sources and services, in one lead and
one deal pipeline, and every tenth record is stored as a duplicate of the one before it (DuplicatePair rows
written directly: the change list reads only those, however they were found). Then VACUUM ANALYZE.

Prints the time of the rebuild, and for the admin change lists of customers, leads and deals (a superuser, the
test client, no browser): the time and queries of the page with the filter off, "Has duplicates", "No
duplicates", a source (service) chosen, a created range of one month and page 3, median of 7 after a warm-up,
with the slowest queries of the "Has duplicates" view; the card (change form) of one record of each; and
`stored_counts` for a page of 100.
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
SOURCES = ["", "Website", "Exhibition", "Referral", "Cold call", "Telegram", "Partner", "Advertising"]
SERVICES = ["SEO", "Audit", "Context ads", "Web design", "Support", "Hosting", "SMM"]
DAYS = 3 * 365  # creation dates spread over three years before BASE_DAY
BASE_DAY = "2026-12-01"
DUPLICATE_EVERY = 10  # every tenth lead or deal is stored as a duplicate of the one before it


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


def spread_customers() -> None:
    """Give the customers creation dates over DAYS days and sources (a COPY gives them all one moment, no source)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(created_at) - MIN(created_at) > interval '30 days' FROM crm_customer")
        if cursor.fetchone()[0]:
            return
        began = time.monotonic()
        cursor.execute(
            "UPDATE crm_customer SET created_at = %s::timestamptz - ((id * 7919) %% %s) * interval '1 day'"
            " - (id %% 86400) * interval '1 second', source = (%s::text[])[1 + (id * 31) %% %s]",
            [BASE_DAY, DAYS, SOURCES[:1] * 3 + SOURCES, len(SOURCES) + 3],
        )
    print(f"spread the customers' dates and sources in {time.monotonic() - began:.1f} s", file=sys.stderr)


def build_staged(model_name: str, count: int) -> None:
    """COPY `count` leads or deals (and their stored duplicates) unless there are that many already."""
    import datetime

    from django.db import connection

    from crm.models import Deal, Lead, Pipeline, Stage
    from dedup.models import DuplicatePair

    model = {"lead": Lead, "deal": Deal}[model_name]
    if model.objects.count() == count:
        return
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {model._meta.db_table} RESTART IDENTITY CASCADE")
    DuplicatePair.objects.filter(entity=model_name).delete()
    pipeline, _created = Pipeline.objects.get_or_create(kind=model_name, name="Bench")
    stages = [
        Stage.objects.get_or_create(pipeline=pipeline, name=name, defaults={"semantic": semantic, "sort_order": i})[0]
        for i, (name, semantic) in enumerate([("New", "open"), ("Talks", "open"), ("Won", "won"), ("Lost", "lost")])
    ]
    base = datetime.datetime.fromisoformat(BASE_DAY).replace(tzinfo=datetime.timezone.utc)

    def created(n):
        return base - datetime.timedelta(days=(n * 7919) % DAYS, seconds=n % 86400)

    def rows():
        for n in range(1, count + 1):
            stage = stages[n % len(stages)]
            common = (n, pipeline.pk, stage.pk, created(n), n % 5 == 0, n % 20 == 0)
            if model is Lead:
                yield (*common, f"Request {n}", f"Name{n % 977}", f"Surname{n % 1979}", SOURCES[(n * 31) % len(SOURCES)])
            else:
                yield (*common, f"Deal {n}", SERVICES[(n * 31) % len(SERVICES)], (n % 1000) * 100)

    common = ["id", "pipeline_id", "stage_id", "created_at", "is_repeat", "is_repeat_inquiry"]
    extra = ["title", "first_name", "last_name", "source"] if model is Lead else ["title", "service", "amount"]
    bench_scan.copy_rows(model, rows(), fields=common + extra)
    pairs = (
        (model_name, a, b)
        for n in range(DUPLICATE_EVERY, count + 1, DUPLICATE_EVERY)
        for a, b in ((n, n - 1), (n - 1, n))
    )
    bench_scan.copy_rows(DuplicatePair, pairs, fields=["entity", "record_id", "other_id"])
    print(f"built {count:,} {model_name}s in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)


def measure_list(client, label: str, url: str, views) -> None:
    for name, params in views:
        ms, queries = median_of(lambda params=params: client.get(url, params).status_code == 200 or sys.exit(url))
        print(f"  {name:<22} {ms:8.1f} ms (median of {RUNS}), {queries} queries")
    slowest(client, url, dict(views)["Has duplicates"])


def slowest(client, url: str, params: dict) -> None:
    """Print the three slowest queries of one view (time as Django's debug cursor measured it)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, params)
    worst = sorted(captured.captured_queries, key=lambda query: -float(query["time"]))[:3]
    total = sum(float(query["time"]) for query in captured.captured_queries) * 1000
    print(f"    SQL of 'Has duplicates': {total:.1f} ms in {len(captured.captured_queries)} queries; slowest:")
    for query in worst:
        print(f"      {float(query['time']) * 1000:7.1f} ms  {query['sql'][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--deals", type=int, default=100_000)
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
        DuplicatePair.objects.filter(entity="customer").delete()
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

    spread_customers()
    build_staged("lead", args.leads)
    build_staged("deal", args.deals)
    began = time.monotonic()
    bench_scan.analyze()
    print(f"VACUUM ANALYZE in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)

    from django.contrib.auth import get_user_model

    from crm.models import Deal, Lead

    admin, _created = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(admin)
    import crm

    print(f"code: {Path(crm.__file__).parent.parent}; load average {open('/proc/loadavg').read().split()[:3]}")
    month = {"created_after": "2026-03-01", "created_before": "2026-03-31"}
    for model, entity, choice_filter in ((Customer, "customer", "source"), (Lead, "lead", "source"),
                                         (Deal, "deal", "service")):
        url = f"/admin/crm/{entity}/"
        holders = DuplicatePair.objects.filter(entity=entity).values("record_id").distinct().count()
        value = model.objects.exclude(**{choice_filter: ""}).values_list(choice_filter, flat=True).first()
        print(f"\n{model._meta.verbose_name_plural.capitalize()} change list, {model.objects.count():,} records, "
              f"{holders:,} with duplicates")
        measure_list(client, entity, url, [
            ("filter off", {}),
            ("Has duplicates", {"has_duplicates": "yes"}),
            ("No duplicates", {"has_duplicates": "no"}),
            (f"{choice_filter} = {value}", {choice_filter: value}),
            ("created in one month", month),
            ("page 3", {"p": "3"}),
        ])
        record = model.objects.order_by("-pk").first()
        ms, queries = median_of(
            lambda url=f"{url}{record.pk}/change/": client.get(url).status_code == 200 or sys.exit(url)
        )
        print(f"  {'card (change form)':<22} {ms:8.1f} ms (median of {RUNS}), {queries} queries")
    page = list(Customer.objects.order_by("-pk").values_list("pk", flat=True)[:100])
    ms, queries = median_of(lambda: stored_counts(Customer, page))
    print(f"\n  stored_counts for a page of 100: {ms:.2f} ms, {queries} query")
    print(f"load average at the end {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
