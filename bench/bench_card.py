#!/usr/bin/env python
"""Benchmark the customer card, its duplicates list and the compare screen one request at a time, in process.

Runs standalone on an existing PostgreSQL base (e.g. a copy of bench_load.py's `bench_prod`, 1,000,000 customers):
`BENCH_DB_NAME=h_x_1m .venv/bin/python bench/bench_card.py [--cards N] [--timeline K] [--profile FILE]`.
It logs a superuser in with Django's test client (`DJANGO_DEBUG=false`, local settings) and opens N random
customers of the lower half of the ids: their change form (the card), the list behind the badge and the compare
screen of the customer with its first duplicate. Prints per screen: queries (max), the process's CPU time
(median, min) and wall time (median, p95). `--timeline K` first gives the first customer K rows of every kind of
timeline item, and reports its card apart (the card must not grow with its history). `--profile FILE` writes a
cProfile of the cards to FILE.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import percentile, setup_django  # noqa: E402  (bench/ is the script's own folder)

DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_prod")
WARM_UP = 5


def timed_get(client, url: str) -> tuple[float, float, int, int]:
    """GET the URL: (wall ms, CPU ms of this process, queries, status). Queries are counted by a wrapper that
    costs next to nothing (the test utilities' capture formats every statement)."""
    from django.db import connection

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        wall, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
    return wall, cpu, queries, response.status_code


def report(label: str, rows: list[tuple[float, float, int, int]]) -> None:
    walls, cpus = [row[0] for row in rows], [row[1] for row in rows]
    bad = sum(1 for row in rows if row[3] != 200)
    print(f"{label:<34} n {len(rows):3d}  queries max {max(row[2] for row in rows):3d}  "
          f"CPU median {statistics.median(cpus):6.1f} min {min(cpus):6.1f} ms  "
          f"wall median {statistics.median(walls):6.1f} p95 {percentile(walls, 0.95):6.1f} ms"
          + (f"  NOT 200: {bad}" if bad else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=60)
    parser.add_argument("--timeline", type=int, default=0)
    parser.add_argument("--profile", default="")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    setup_django(DB_NAME, DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1,localhost")

    from django.contrib.auth import get_user_model
    from django.db.models import Max
    from django.test import Client
    from django.urls import reverse

    from crm.models import Customer
    from dedup.engine.finder import duplicates_of

    user, _created = get_user_model().objects.get_or_create(
        username="bench_card", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    top = Customer.objects.aggregate(top=Max("pk"))["top"] or 0
    rng = random.Random(args.seed)
    pks = [rng.randrange(1, max(2, top // 2)) for _ in range(args.cards + WARM_UP)]
    existing = set(Customer.objects.filter(pk__in=pks).values_list("pk", flat=True))
    pks = [pk for pk in pks if pk in existing]

    def card(pk):
        return reverse("admin:crm_customer_change", args=[pk])

    if args.timeline:
        from tests import factories

        busy = Customer.objects.get(pk=pks[0])
        for _index in range(args.timeline):
            for factory in (factories.NoteFactory, factories.TaskFactory, factories.CallFactory,
                            factories.EmailMessageFactory, factories.SmsMessageFactory, factories.ChatMessageFactory,
                            factories.AttachmentFactory):
                factory(content_object=busy, author=user)
        report(f"card with {args.timeline} x 7 timeline rows", [timed_get(client, card(busy.pk)) for _ in range(10)])

    for pk in pks[:WARM_UP]:
        timed_get(client, card(pk))
    measured = pks[WARM_UP:]
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    if profiler:
        profiler.enable()
    cards = [timed_get(client, card(pk)) for pk in measured]
    if profiler:  # the profile is taken apart: it doubles the CPU time it watches
        profiler.disable()
        profiler.dump_stats(args.profile)
        cards = [timed_get(client, card(pk)) for pk in measured]
    print(f"\n{len(measured)} customers of {top:,} on {DB_NAME} (PostgreSQL); load {os.getloadavg()[0]:.1f}")
    report("card (change form)", cards)
    lists = [timed_get(client, reverse("admin:crm_customer_duplicates", args=[pk]) + "?fragment=1")
             for pk in measured]
    report("duplicates list (dialog)", lists)
    pairs = []
    for pk in measured:
        found = duplicates_of(Customer.objects.get(pk=pk), limit=1)
        if found:
            pairs.append((pk, found[0].pk))
    compares = [
        timed_get(client, reverse("admin:crm_customer_compare", args=[pk]) + f"?records={pk}&records={other}")
        for pk, other in pairs
    ]
    if compares:
        report("compare screen", compares)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
