#!/usr/bin/env python
"""Benchmark the chunked daily scan on 1,000,000 customers with 1 and 2 Celery workers; print times and speed-up.

Runs standalone: `.venv/bin/python bench/bench_scan_workers.py [--customers N] [--workers 1 2] [--reuse]`.
It (re)creates its own database `bench_scan` on 127.0.0.1:5432 as user postgres (BENCH_PG_URL overrides the
server) and fills it with COPY: customers with a phone and an email each, planted duplicates (pairs by phone,
pairs by email, trios joined by a phone and an email), and their match keys as the engine computes them
(checked against `dedup.engine.keys` on a sample). The broker is Redis, database 13 (BENCH_REDIS_URL overrides), so
the benchmark never touches another process's queue.

For each worker count it starts that many real worker processes (`celery -A config worker`, one process each),
runs the same code path as the periodic task (`review.scan_start`: a task plans the key ranges and sends one
task per chunk, the last chunk sends the join), waits for the run to finish, stops the workers, and reports the
time of each phase: plan (start to the first chunk), chunks (first chunk started to last finished: the part
the workers share), join (one task). The review queue is emptied before each of these runs so they do the same
work; a last run with the queue left filled shows the daily case, where the join mostly confirms known groups.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER, copy_rows, create_database  # noqa: E402,F401  (bench/ is the script's own folder)

# Never the test databases; BENCH_DB_NAME=bench_prod measures the scan on bench_load.py's base (the same customers).
DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_scan")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
FIRST = ["Ivan", "Olga", "Petr", "Anna", "John", "Mary", "Sergey", "Elena", "Dmitry", "Natalia", "Alexey",
         "Irina", "Pavel", "Tatiana", "Nikolai", "Svetlana", "Mikhail", "Ekaterina", "Andrey", "Yulia", "Oleg",
         "Maria", "Victor", "Daria", "Roman", "Polina", "Igor", "Ksenia", "Artem", "Sofia", "Denis"]
LAST = ["Petrov", "Ivanov", "Smith", "Sidorov", "Brown", "Kuznetsov", "Popov", "Miller", "Sokolov", "Lebedev",
        "Kozlov", "Novikov", "Morozov", "Volkov", "Solovyov", "Vasiliev", "Zaitsev", "Pavlov", "Semenov",
        "Golubev", "Vinogradov", "Bogdanov", "Vorobyov", "Fedorov", "Mikhailov", "Belyaev", "Tarasov",
        "Belov", "Komarov", "Orlov", "Kiselev", "Makarov", "Andreev", "Kovalev", "Ilyin", "Gusev", "Titov"]
WORKER_READY_TIMEOUT = 60
RUN_TIMEOUT = 3600


# --- The base -------------------------------------------------------------------------------------------------


def person(i: int) -> dict:
    """Customer i: its name, phone (as typed) and email; planted duplicates copy an earlier customer's."""
    name = (FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)])
    phone_of = email_of = i
    if i % 100 == 0:  # a trio: the phone of i-1 and the email of i-2
        phone_of, email_of, name = i - 1, i - 2, person(i - 1)["name"]
    elif i % 20 == 0:  # a pair by phone, written the national way
        phone_of, name = i - 1, person(i - 1)["name"]
    elif i % 33 == 0:  # a pair by email, in capitals
        email_of, name = i - 1, person(i - 1)["name"]
    e164 = f"+7912{phone_of:07d}"
    if phone_of != i:
        d = f"{phone_of:07d}"
        typed = f"8 (912) {d[:3]}-{d[3:5]}-{d[5:]}"
    else:
        typed = f"+7 912 {phone_of:07d}"
    email = f"customer{email_of}@example.com"
    return {
        "name": name,
        "phone": typed,
        "e164": e164,
        "email": email.upper() if email_of != i else email,
        "email_key": email,
    }


def fast_keys(i: int, kinds: set[str], names: dict) -> list[tuple[str, str, str]]:
    """The index rows of customer i, as dedup.engine.keys makes them (verified on a sample by `check_keys`)."""
    data = person(i)
    first, last = data["name"]
    rows = []
    if "phone" in kinds:
        rows.append(("phone", data["e164"], data["phone"]))
    if "email" in kinds:
        rows.append(("email", data["email_key"], data["email"]))
    full = f"{last} {first}"
    for kind, value in (("full_name", full), ("first_name", first), ("last_name", last)):
        if kind in kinds:
            rows.append((kind, names[(kind, value)], value))
    return rows


def index_values(i: int) -> dict:
    data = person(i)
    first, last = data["name"]
    return {"phone": [data["phone"]], "email": [data["email"]], "full_name": [f"{last} {first}"],
            "first_name": [first], "last_name": [last]}


def check_keys(spec, kinds: set[str], names: dict, customers: int) -> None:
    """Refuse to build a base whose keys differ from what the engine would index."""
    from dedup.engine import keys

    rng = random.Random(5)
    for i in rng.sample(range(1, customers + 1), min(3000, customers)) + [100, 200, 20, 33, 99, 98]:
        if i > customers:
            continue
        expected = sorted((row.kind, row.key, row.value) for row in keys.values_rows(spec, index_values(i), kinds))
        got = sorted(fast_keys(i, kinds, names))
        if expected != got:
            sys.exit(f"The bench's keys for customer {i} differ from the engine's:\n{got}\n{expected}")


def build_base(customers: int) -> dict:
    """Fill the database with the customers, their phones and emails, and their match keys; return timings."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from crm.models import Customer, Email, Phone
    from dedup import registry
    from dedup.engine import keys
    from dedup.engine.index import indexed_kinds
    from dedup.models import MatchKey

    spec = registry.get("customer")
    kinds = indexed_kinds(spec)  # the plan of the rules, synced while the base is empty
    supported = {"phone", "email", "full_name", "first_name", "last_name"}
    names = {}
    for first in FIRST:
        for last in LAST:
            for kind, value in (("full_name", f"{last} {first}"), ("first_name", first), ("last_name", last)):
                if kind in kinds:
                    names[(kind, value)] = keys.normalized(spec.field(kind).kind, value)
    check_keys(spec, kinds & supported, names, customers)
    started = time.monotonic()
    customer_type = ContentType.objects.get_for_model(Customer).pk
    copy_rows(
        Customer,
        ((i, person(i)["name"][0], person(i)["name"][1]) for i in range(1, customers + 1)),
        fields=["id", "first_name", "last_name"],
    )
    copy_rows(
        Phone,
        ((customer_type, i, (d := person(i))["phone"], d["e164"], True) for i in range(1, customers + 1)),
        fields=["content_type_id", "object_id", "number", "e164", "is_primary"],
    )
    copy_rows(
        Email,
        ((customer_type, i, person(i)["email"], True) for i in range(1, customers + 1)),
        fields=["content_type_id", "object_id", "address", "is_primary"],
    )
    wanted = kinds & supported
    key_rows = copy_rows(
        MatchKey,
        (
            ("customer", i, kind, key, value)
            for i in range(1, customers + 1)
            for kind, key, value in fast_keys(i, wanted, names)
        ),
        fields=["entity", "record_id", "kind", "key", "value"],
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"seconds": time.monotonic() - started, "keys": key_rows}


# --- Workers ------------------------------------------------------------------------------------------------------


def worker_env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"{SERVER}/{DB_NAME}",
            "CELERY_BROKER_URL": REDIS,
            "CELERY_RESULT_BACKEND": REDIS,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def start_workers(count: int, tag: str) -> list[subprocess.Popen]:
    celery = str(Path(sys.executable).with_name("celery"))
    workers = []
    for index in range(count):
        workers.append(
            subprocess.Popen(
                [celery, "-A", "config", "worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{tag}-{index}@%h"],
                cwd=ROOT,
                env=worker_env(),
                stdout=subprocess.DEVNULL,
                stderr=open(Path(os.environ.get("TMPDIR", "/tmp")) / f"{tag}-{index}.log", "w"),
            )
        )
    return workers


def wait_ready(app, count: int) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
    raise SystemExit(f"{count} workers did not answer within {WORKER_READY_TIMEOUT} s")


def peak_memory_mb(process: subprocess.Popen) -> float:
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- One measured scan ------------------------------------------------------------------------------------------


def empty_queue() -> None:
    from django.db import connection

    from dedup.models import DuplicateGroup, DuplicateGroupMember, ScanChunk, ScanRun

    tables = [DuplicateGroup.rules.through, DuplicateGroupMember, DuplicateGroup, ScanChunk, ScanRun]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{m._meta.db_table}"' for m in tables))


def measured_scan(app, workers: int, *, fresh_queue: bool = True) -> dict:
    from dedup import review
    from dedup.models import ScanChunk, ScanRun

    if fresh_queue:
        empty_queue()
    app.control.purge()
    processes = start_workers(workers, f"bench-scan-{workers}w")
    try:
        wait_ready(app, workers)
        started = time.monotonic()
        run = review.scan_start(entities=["customer"], trigger=ScanRun.Trigger.SCHEDULE)
        deadline = started + RUN_TIMEOUT
        while True:
            run.refresh_from_db()
            if run.status != ScanRun.Status.RUNNING:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the scan did not finish within {RUN_TIMEOUT} s")
            time.sleep(0.2)
        total = time.monotonic() - started
        memory = max(peak_memory_mb(process) for process in processes)
    finally:
        stop_workers(processes)
    if run.status != ScanRun.Status.DONE:
        raise SystemExit(f"the scan failed: {run.failure_reason}")
    chunks = list(ScanChunk.objects.filter(run=run).order_by("index"))
    first_chunk = min(chunk.started_at for chunk in chunks)
    last_chunk = max(chunk.finished_at for chunk in chunks)
    figures = run.stats["customer"]
    return {
        "workers": workers,
        "queue": "empty" if fresh_queue else "filled",
        "total": total,
        "plan": (first_chunk - run.started_at).total_seconds(),
        "chunks_phase": (last_chunk - first_chunk).total_seconds(),
        "join": (run.finished_at - last_chunk).total_seconds(),
        "chunks": len(chunks),
        "chunk_seconds": sum(chunk.seconds or 0 for chunk in chunks),
        "records": figures["records"],
        "groups": figures["groups"],
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-records", type=int, default=None, help="records per chunk (default: the service's)")
    parser.add_argument("--reuse", action="store_true", help="keep the base of an earlier run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting; the fastest is reported")
    args = parser.parse_args()

    reused = create_database(DB_NAME, reuse=args.reuse)
    os.environ.update(worker_env())

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from config.celery import app
    from crm.models import Customer
    from dedup import review

    if connection.vendor != "postgresql":
        sys.exit("The scan benchmark needs PostgreSQL.")
    call_command("migrate", verbosity=0)
    built = None
    if not (reused and Customer._base_manager.count() >= args.customers):  # merged ones included
        if Customer.objects.exists():
            sys.exit(f"{DB_NAME} holds another base; run without --reuse to rebuild it.")
        built = build_base(args.customers)
    if args.chunk_records:
        settings.DEDUP_SCAN_CHUNK_RECORDS = args.chunk_records
    chunk_records = getattr(settings, "DEDUP_SCAN_CHUNK_RECORDS", review.SCAN_CHUNK_RECORDS)

    def best(workers: int, fresh_queue: bool = True) -> dict:
        # On a shared machine other processes steal CPU from some runs; the fastest run is the scan's own time.
        runs = [measured_scan(app, workers, fresh_queue=fresh_queue) for _ in range(max(1, args.repeat))]
        return min(runs, key=lambda row: row["total"])

    results = [best(workers) for workers in args.workers]
    # The daily case: the queue already holds what the last scan found, so the join mostly confirms it.
    rescan = best(max(args.workers), fresh_queue=False)

    customers = Customer.objects.count()
    print(f"database:        PostgreSQL ({DB_NAME}), {customers:,} customers; broker {REDIS}")
    if built:
        print(f"base built:      {built['seconds']:.1f} s by COPY ({built['keys']:,} match keys)")
    print(f"chunking:        {chunk_records:,} records per chunk -> {results[0]['chunks']} chunks (key ranges)")
    print(f"{'workers':>7} {'queue':>7} {'total s':>8} {'plan s':>7} {'chunks s':>9} {'join s':>7} {'worker-s':>9} "
          f"{'groups':>8} {'peak MB':>8}")
    for row in [*results, rescan]:
        print(f"{row['workers']:>7} {row['queue']:>7} {row['total']:>8.1f} {row['plan']:>7.1f} "
              f"{row['chunks_phase']:>9.1f} {row['join']:>7.1f} {row['chunk_seconds']:>9.1f} {row['groups']:>8,} "
              f"{row['memory']:>8.0f}")
    base = results[0]
    for row in results[1:]:
        print(f"speed-up {base['workers']} -> {row['workers']} workers: {base['total'] / row['total']:.2f}x overall, "
              f"{base['chunks_phase'] / row['chunks_phase']:.2f}x on the chunks (the join is one task)")
    print(f"daily re-scan with {rescan['workers']} workers (queue filled): {rescan['total']:.1f} s, "
          f"join {rescan['join']:.1f} s")
    if len({row["groups"] for row in [*results, rescan]}) != 1:
        sys.exit("The runs found different groups: the chunked scan is not deterministic.")


if __name__ == "__main__":
    main()
