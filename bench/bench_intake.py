#!/usr/bin/env python
"""Benchmark the intake: how long an incoming lead takes to be decided with 1,000,000 customers on PostgreSQL,
and whether 50 concurrent requests about one person ever make two leads.

Runs standalone: `.venv/bin/python bench/bench_intake.py [--customers N] [--leads N] [--requests N] [--reuse]`.
It (re)creates its own database `bench_intake` on 127.0.0.1:5432 as user postgres (BENCH_PG_URL overrides the
server), fills it with COPY, and drops nothing else. The requests go through the whole stack in-process (DRF
view, token, validation, the intake service), as a webhook would, without an HTTP server in between.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER, copy_rows, create_database, percentile  # noqa: E402,F401  (bench/ is the script's own folder)

# Never the test databases; BENCH_DB_NAME lets runs side by side (several worktrees) keep apart.
DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_intake")
TARGET_P95_MS = 20.0
CONCURRENT = 50
STAGES = [("New", "open"), ("In progress", "open"), ("Won", "won"), ("Lost", "lost")]


def _phone(prefix: str, index: int) -> str:
    """A valid Russian mobile number: +7 <prefix> and seven digits from the index."""
    return f"+7{prefix}{index:07d}"


def build_base(*, customers: int, leads: int) -> dict:
    """Fill the database: customers with a phone and an email each, leads in a lead pipeline with theirs."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from crm.models import Customer, Email, Lead, Phone, Pipeline, Stage
    from dedup import registry
    from dedup.engine.index import rebuild

    started = time.monotonic()
    pipeline = Pipeline.objects.create(name="Incoming", kind=Pipeline.Kind.LEAD)
    stages = [
        Stage.objects.create(pipeline=pipeline, name=name, semantic=semantic, sort_order=order)
        for order, (name, semantic) in enumerate(STAGES)
    ]
    customer_type = ContentType.objects.get_for_model(Customer).pk
    lead_type = ContentType.objects.get_for_model(Lead).pk
    rng = random.Random(7)
    first = ["Ivan", "Olga", "Petr", "Anna", "John", "Mary", "Sergey", "Elena"]
    last = ["Petrov", "Ivanova", "Smith", "Sidorov", "Brown", "Kuznetsova", "Popov", "Miller"]
    copy_rows(
        Customer,
        ((i, rng.choice(first), rng.choice(last)) for i in range(1, customers + 1)),
        fields=["id", "first_name", "last_name"],
    )
    copy_rows(
        Lead,
        (
            (
                i,
                f"Lead {i}",
                pipeline.pk,
                # three in four leads are open; the rest won or lost
                stages[0 if i % 4 in (0, 1) else (1 if i % 4 == 2 else 2 + i % 2)].pk,
                rng.choice(first),
                rng.choice(last),
            )
            for i in range(1, leads + 1)
        ),
        fields=["id", "title", "pipeline_id", "stage_id", "first_name", "last_name"],
    )
    # Phones: customers +7 912 …, leads +7 915 …; stored as typed, with their E.164 form.
    copy_rows(
        Phone,
        (
            *((customer_type, i, f"8 (912) {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
               _phone("912", i), True) for i in range(1, customers + 1)),
            *((lead_type, i, _phone("915", i), _phone("915", i), True) for i in range(1, leads + 1)),
        ),
        fields=["content_type_id", "object_id", "number", "e164", "is_primary"],
    )
    copy_rows(
        Email,
        (
            *((customer_type, i, f"Customer{i}@Example.com", True) for i in range(1, customers + 1)),
            *((lead_type, i, f"lead{i}@example.org", True) for i in range(1, leads + 1)),
        ),
        fields=["content_type_id", "object_id", "address", "is_primary"],
    )
    copied = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    started_index = time.monotonic()
    # The duplicate engine's match-key index of leads, as a running installation has it.
    rebuild(registry.get("lead"))
    indexed = time.monotonic() - started_index
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"copy_seconds": copied, "index_seconds": indexed, "pipeline": pipeline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=300, help="requests per scenario")
    parser.add_argument("--reuse", action="store_true", help="keep the base of an earlier run")
    parser.add_argument(
        "--broker", default="",
        help="a Redis URL: send the background tasks (the stored figures' refresh) there, as production does, instead "
             "of running them in the request; a worker thread runs them after the requests and its time is reported",
    )
    args = parser.parse_args()
    if args.broker:
        os.environ.update(
            {"CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_BROKER_URL": args.broker, "CELERY_RESULT_BACKEND": args.broker}
        )

    reused = create_database(DB_NAME, reuse=args.reuse)
    os.environ["DATABASE_URL"] = f"{SERVER}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    # One connection kept across requests, as a production web process has from its pool (the local default,
    # CONN_MAX_AGE 0, would open one per request; the figures below assume a kept connection).
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "60")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from crm.models import Customer, Lead, Pipeline
    from tests.factories import IntegrationTokenFactory

    setup_test_environment()  # lets the in-process client's "testserver" host through
    if connection.vendor != "postgresql":
        sys.exit("The intake benchmark needs PostgreSQL.")
    call_command("migrate", verbosity=0)
    if reused and Customer.objects.count() >= args.customers:
        pipeline = Pipeline.objects.get(name="Incoming", kind=Pipeline.Kind.LEAD)
        built = None
    else:
        built = build_base(customers=args.customers, leads=args.leads)
        pipeline = built["pipeline"]
    token = IntegrationTokenFactory(name=f"bench {time.time():.0f}", pipeline=pipeline)
    customers = Customer.objects.count()
    leads_before = Lead.objects.count()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
    rng = random.Random(time.time_ns())
    run = int(time.time()) % 100000
    fresh = iter(range((run % 5000) * 1000, 10**7))
    open_leads = [i for i in range(1, min(args.leads, 100_000) + 1) if i % 4 in (0, 1, 2)]
    rng.shuffle(open_leads)
    returning = rng.sample(range(1, customers + 1), args.requests * 2)

    def payload(scenario: str, index: int) -> dict:
        if scenario == "new person":
            n = next(fresh)
            return {"name": "New Person", "phones": [_phone("916", n)], "emails": [f"new{n}@example.net"]}
        if scenario == "matches open lead (phone)":
            i = open_leads[index]
            return {"name": "Again", "phones": [f"8 915 {i // 10000 % 1000:03d} {i // 100 % 100:02d} {i % 100:02d}"]}
        if scenario == "matches open lead (email)":
            i = open_leads[args.requests + index]
            return {"name": "Again", "emails": [f"LEAD{i}@Example.org"], "source": "bench"}
        i = returning[index]  # a customer of the base, not in any open lead: a repeat lead
        return {"name": "Back Again", "phones": [_phone("912", i)], "emails": [f"customer{i}@example.com"]}

    scenarios = ["new person", "matches open lead (phone)", "matches open lead (email)", "returning customer"]
    plan = [(scenario, index) for scenario in scenarios for index in range(args.requests)]
    rng.shuffle(plan)
    for index in range(20):  # warm-up: connections, caches, compiled rules
        client.post("/api/leads/", payload("new person", index), format="json")

    timings: dict[str, list[float]] = {scenario: [] for scenario in scenarios}
    # CPU time of this process per request: on a machine shared with other work, wall time includes waiting
    # for a core; CPU time is what the request itself costs on the application side.
    cpu: dict[str, list[float]] = {scenario: [] for scenario in scenarios}
    statuses: dict[str, dict[int, int]] = {scenario: {} for scenario in scenarios}
    queries = {"count": 0}

    def count(execute, sql, params, many, context):
        queries["count"] += 1
        return execute(sql, params, many, context)

    # The decision alone: the intake service (lock, match, decide, write, commit), without HTTP, token and
    # validation, timed around the view's call of it.
    from crm.intake.api.views import LeadIntakeView

    decided: list[float] = []
    service = LeadIntakeView.service

    def timed_service(**kwargs):
        started = time.perf_counter()
        try:
            return service(**kwargs)
        finally:
            decided.append((time.perf_counter() - started) * 1000)

    LeadIntakeView.service = staticmethod(timed_service)
    with connection.execute_wrapper(count):
        for scenario, index in plan:
            body = payload(scenario, index)
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.post("/api/leads/", body, format="json")
            timings[scenario].append((time.perf_counter() - started) * 1000)
            cpu[scenario].append((time.process_time() - started_cpu) * 1000)
            statuses[scenario][response.status_code] = statuses[scenario].get(response.status_code, 0) + 1

    everything = [value for values in timings.values() for value in values]
    print(f"database:          PostgreSQL ({DB_NAME}), {customers:,} customers, {leads_before:,} leads before the run")
    if built:
        print(f"base built:        COPY {built['copy_seconds']:.1f} s, lead match-key index {built['index_seconds']:.1f} s")
    print(f"requests:          {len(everything):,} POST /api/leads/ in-process (token, validation, decision, writes)")
    print(f"queries/request:   {queries['count'] / len(everything):.1f}")
    print(f"{'scenario':<28} {'answers':<16} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for scenario in scenarios:
        values = timings[scenario]
        answers = ", ".join(f"{code}x{n}" for code, n in sorted(statuses[scenario].items()))
        print(f"{scenario:<28} {answers:<16} {statistics.median(values):7.1f} {percentile(values, 0.95):7.1f} "
              f"{percentile(values, 0.99):7.1f} {max(values):7.1f}")
    p95 = percentile(everything, 0.95)
    print(f"{'all':<28} {'':<16} {statistics.median(everything):7.1f} {p95:7.1f} "
          f"{percentile(everything, 0.99):7.1f} {max(everything):7.1f}")
    LeadIntakeView.service = service
    print(f"{'decision only (service)':<28} {'':<16} {statistics.median(decided):7.1f} {percentile(decided, 0.95):7.1f} "
          f"{percentile(decided, 0.99):7.1f} {max(decided):7.1f}")
    all_cpu = [value for values in cpu.values() for value in values]
    print(f"{'app CPU per request':<28} {'':<16} {statistics.median(all_cpu):7.1f} "
          f"{percentile(all_cpu, 0.95):7.1f} {percentile(all_cpu, 0.99):7.1f} {max(all_cpu):7.1f}")
    load = os.getloadavg()[0]
    print(f"machine load:      {load:.1f} on {os.cpu_count()} cores during the run"
          + (" (busy: wall times include waiting for a core)" if load > (os.cpu_count() or 1) else ""))
    print(f"p95 target:        < {TARGET_P95_MS:.0f} ms: {'MET' if p95 < TARGET_P95_MS else 'MISSED'}")

    # --- 50 concurrent requests about one person --------------------------------------------------------
    rounds, worst = 5, 0
    for round_index in range(rounds):
        n = next(fresh)
        formats = [_phone("917", n), f"8 917 {n:07d}", f"8 (917) {n // 10000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"]
        barrier = threading.Barrier(CONCURRENT)

        def post(index, formats=formats, barrier=barrier, n=n):
            worker = APIClient()
            worker.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
            try:
                barrier.wait(timeout=60)
                return worker.post(
                    "/api/leads/",
                    {"name": "Same Person", "phones": [formats[index % 3]], "emails": [f"same{n}.{index}@example.net"]},
                    format="json",
                ).status_code
            finally:
                connections.close_all()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
            codes = list(pool.map(post, range(CONCURRENT)))
        elapsed = time.perf_counter() - started
        made = Lead.objects.filter(phones__e164=_phone("917", n)).distinct().count()
        worst = max(worst, made)
        print(f"concurrent round {round_index + 1}: {CONCURRENT} requests for one person in {elapsed:.2f} s -> "
              f"{made} lead(s); answers {', '.join(f'{c}x{codes.count(c)}' for c in sorted(set(codes)))}")
    print(f"concurrency:       {'never two leads' if worst == 1 else f'DUPLICATES: up to {worst} leads'}")
    if args.broker:
        drain_tasks(args.broker, requests=len(everything) + rounds * CONCURRENT)


def drain_tasks(url: str, *, requests: int) -> None:
    """Run what the requests queued (the stored figures' refresh) through a real worker thread; print its cost."""
    import redis
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    client = redis.Redis.from_url(url)
    queues = list(app.amqp.queues)
    # Kombu keeps a queue's messages of each priority step in a list of its own ("<queue>\x06\x16<step>").
    lists = [name if step == 0 else f"{name}\x06\x16{step}" for name in queues for step in (0, 3, 6, 9)]
    waiting = sum(client.llen(name) for name in lists)
    started, started_cpu = time.perf_counter(), time.process_time()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60, queues=queues,
                      hostname="bench-intake@%h"):
        while sum(client.llen(name) for name in lists):
            time.sleep(0.05)
        time.sleep(0.5)  # the last task taken runs to its end before the worker stops
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"background tasks:  {waiting:,} queued by {requests:,} requests, run by one worker in {seconds:.1f} s "
          f"({cpu_seconds / max(1, waiting) * 1000:.1f} ms CPU each, {cpu_seconds / max(1, requests) * 1000:.1f} ms per "
          f"request)")


if __name__ == "__main__":
    main()
