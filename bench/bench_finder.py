#!/usr/bin/env python
"""Benchmark the finder on 1,000,000 customers on PostgreSQL: duplicates_of (queries, ms), page counts, saves.

Runs standalone: `.venv/bin/python bench/bench_finder.py [--customers N] [--rebuild] [--scored]`.
With --scored, the customers' scoring model is learned from the base first (dedup.engine.scoring.entity.
scoring_model_learn, timed) and the index gets the scoring keys (timed), so duplicates_of also looks candidates up by
them and scores them (dedup/engine/decide.py): the figures of the one decision every caller asks.
It uses the database `bench_dedup` on 127.0.0.1:5432 (user postgres; BENCH_PG_URL overrides the server), built
the way bench/bench_scan.py builds it (COPY of companies, customers, phones, emails and messenger handles with
planted duplicates and office switchboards, then the engine's bulk index path); a base of the right size left by
an earlier run is reused unless --rebuild.

Prints, for duplicates_of on a sample of records (duplicates, originals, people on a shared switchboard): the
queries per call and the time per call (median, 95th percentile, max); for duplicate_counts on change-list pages
of 100 (the live finder) and for the stored figures the change list reads: queries and time; for saves of a
customer and of a phone: the time including the index upkeep; and the "has duplicates" filter's count. Every
figure comes with the CPU time of this process (on a loaded machine the wall time is mostly waiting for a core).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_scan  # noqa: E402  (the base builder shared with the scan benchmark)
from _pg import percentile  # noqa: E402  (bench/ is the script's own folder)

BUILD_STEP = 100_000
SAMPLE_PER_KIND = 150
WARM_UP = 30
SAVE_WARM_UP = 5


def ensure_base(customers: int, rebuild: bool) -> None:
    from crm.models import Customer

    if not rebuild and Customer.objects.count() == customers:
        print(f"reusing the base of {customers:,} customers in {bench_scan.DB_NAME}", file=sys.stderr)
        return
    bench_scan.reset_base()
    companies = bench_scan.companies_for(customers)
    for start in range(1, customers + 1, BUILD_STEP):
        stop = min(customers + 1, start + BUILD_STEP)
        timings = bench_scan.build_range(start, stop, companies)
        print(f"built {stop - 1:,} customers ({timings})", file=sys.stderr, flush=True)
    bench_scan.analyze()


def learn_and_index() -> None:
    """Learn the customers' model and give the index its scoring keys, printing how long each took."""
    from dedup import registry
    from dedup.engine.index import sync_plan
    from dedup.engine.scoring.entity import scoring_model_learn

    spec = registry.get("customer")
    started = time.perf_counter()
    sync_plan(spec, inline=True)
    print(f"index: scoring keys written in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    from dedup.models import ScoringModel

    if ScoringModel.objects.filter(entity="customer", records=spec.model.objects.count()).exists():
        print("model: the one learned by an earlier run on this base", file=sys.stderr, flush=True)
        return
    started = time.perf_counter()
    learned = scoring_model_learn(entity="customer")
    print(f"model: learned from {len(learned.pks):,} customers in {time.perf_counter() - started:.1f} s "
          f"({len(learned.pairs):,} candidate pairs)", file=sys.stderr, flush=True)


def measure(call, items) -> tuple[list[float], list[int], list]:
    """Call for each item: (wall ms, queries, results); the CPU ms of this process are kept in CPU_TIMES (on a loaded
    machine the wall time is mostly waiting for a core, the CPU time is the code's own)."""
    from django.db import connection

    times, queries, results = [], [], []
    CPU_TIMES.clear()
    for item in items:
        count = 0

        def counted(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = call(item)
            times.append((time.perf_counter() - started) * 1000)
            CPU_TIMES.append((time.process_time() - started_cpu) * 1000)
        queries.append(count)
        results.append(result)
    return times, queries, results


CPU_TIMES: list[float] = []


def report(label: str, times: list[float], queries: list[int], extra: str = "") -> None:
    print(f"{label:<44} queries max {max(queries)}  ms median {statistics.median(times):6.2f}  "
          f"p95 {percentile(times, 0.95):6.2f}  max {max(times):7.2f}  "
          f"CPU median {statistics.median(CPU_TIMES):5.2f} p95 {percentile(CPU_TIMES, 0.95):5.2f}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--scored", action="store_true", help="learn the scoring model first")
    args = parser.parse_args()

    bench_scan.create_database(bench_scan.DB_NAME, reuse=True)
    bench_scan.setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    ensure_base(args.customers, args.rebuild)
    if args.scored:
        learn_and_index()

    from crm.models import Customer, Phone
    from dedup.engine.finder import duplicate_counts, duplicates_of
    from dedup.engine.selectors import with_duplicates

    n = args.customers
    companies = bench_scan.companies_for(n)
    rng = random.Random(3)
    duplicates = [i for i in (rng.randrange(101, n + 1) for _ in range(SAMPLE_PER_KIND * 30))
                  if bench_scan.is_duplicate(i)][:SAMPLE_PER_KIND]
    originals = [i for i in (rng.randrange(1, n + 1) for _ in range(SAMPLE_PER_KIND * 3))
                 if not bench_scan.is_duplicate(i)][:SAMPLE_PER_KIND]
    on_switchboard = [i for i in (rng.randrange(1, n + 1) for _ in range(SAMPLE_PER_KIND * 200))
                      if not bench_scan.is_duplicate(i)
                      and bench_scan.switchboard(bench_scan.person(i, companies)["company"])][:SAMPLE_PER_KIND]
    records = Customer.objects.in_bulk(duplicates + originals + on_switchboard)

    def find(pk):
        return duplicates_of(records[pk])

    measure(find, (originals + duplicates)[:WARM_UP])
    print(f"\nFinder on {n:,} customers (PostgreSQL)")
    for label, sample in (("duplicates_of: planted duplicates", duplicates),
                          ("duplicates_of: original records", originals),
                          ("duplicates_of: people on a switchboard", on_switchboard)):
        times, queries, results = measure(find, sample)
        found = sum(1 for result in results if result)
        noted = sum(1 for result in results if result.notes)
        scored = sum(1 for result in results if any(match.rule is None for match in result))
        report(label, times, queries, f"({len(sample)} records, {found} with matches, {noted} with a shared key, "
                                      f"{scored} with a match by the score alone)")

    pages = [list(range(start, start + 100)) for start in rng.sample(range(1, n - 100), 20)]
    times, queries, results = measure(lambda page: duplicate_counts(Customer, page), pages)
    report("duplicate_counts: change-list page of 100", times, queries,
           f"({sum(sum(1 for c in r.values() if c) for r in results)} of 2,000 rows with duplicates)")
    # What the change list shows: the stored figures (dedup.engine.counts), one indexed query per page.
    from dedup.engine.counts import stored_counts

    times, queries, results = measure(lambda page: stored_counts(Customer, page), pages)
    report("stored_counts: change-list page of 100", times, queries,
           f"({sum(sum(1 for c in r.values() if c) for r in results)} of 2,000 rows with stored duplicates)")

    customers = list(Customer.objects.filter(pk__in=rng.sample(range(1, n + 1), 100 + SAVE_WARM_UP)))

    def save_customer(customer):
        customer.first_name = customer.first_name + "x" if len(customer.first_name) < 30 else "Ivan"
        customer.save()

    # Saved bare (autocommit: the figures' marking runs inside the save, each statement commits on its own); the
    # first saves of the process read the kinds and settings and send the figures' refresh message: left out.
    # bench/bench_save.py splits a save into its parts, in a transaction as the admin saves.
    measure(save_customer, customers[:SAVE_WARM_UP])
    times, queries, _ = measure(save_customer, customers[SAVE_WARM_UP:])
    report("customer.save() with the index upkeep", times, queries)
    phones = list(Phone.objects.filter(object_id__in=[c.pk for c in customers])[:100 + SAVE_WARM_UP])

    def save_phone(phone):
        phone.number = phone.number + " "
        phone.save()

    measure(save_phone, phones[:SAVE_WARM_UP])
    times, queries, _ = measure(save_phone, phones[SAVE_WARM_UP:])
    report("phone.save() with the owner's reindex", times, queries)

    started = time.perf_counter()
    having = with_duplicates(Customer.objects.all()).count()
    print(f"{'with_duplicates(all customers).count()':<44} {having:,} records in "
          f"{time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
