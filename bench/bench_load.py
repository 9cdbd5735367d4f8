#!/usr/bin/env python
"""Benchmark the production stack under a mixed load: managers and integrations while a full scan runs and merges
are queued; print requests per second, p50/p95/p99 per kind of request, and errors.

Runs standalone (the load tool is Locust, in the `bench` extra: `.venv/bin/pip install -e ".[bench]"`):
`.venv/bin/python bench/bench_load.py [--customers N] [--minutes M] [--managers U] [--integrations U]
[--web N] [--workers M] [--merges K] [--reuse] [--seed-only]`.

Everything runs on 127.0.0.1. It (re)creates its own database `bench_prod` (BENCH_DB_NAME names another, e.g. a
copy: `createdb -T bench_prod h_mine_1m`) on 127.0.0.1:5432 as user postgres (BENCH_PG_URL overrides the server) and fills it by COPY with the customers of bench_scan_workers.py (a phone and
an email each, planted duplicates: pairs (i-1, i) for every i divisible by 20, and more) and their match keys.
The broker is Redis database 13 (BENCH_REDIS_URL overrides). Then it starts the production stack as
Procfile.prod does, with `config.settings.production`: gunicorn with N processes, the intake API's own gunicorn
(`--api` processes x `--api-threads`; `--api 0`: the integrations post to the web's gunicorn), a Celery worker on the
interactive queue (merges; WORKER_CPU_PRIORITY 5), one on the figures queue (the figures after a save; 5), M Celery
worker processes on the bulk queue (the scan; WORKER_CPU_PRIORITY idle; `--no-priority`: nice 5 and 10 as before),
beat; waits for /healthz;
empties the review queue and starts a full scan of the customers; queues K merges of
planted pairs spread over the run; and runs Locust headless for the given minutes: managers (logged in) open
customer change lists (with their duplicate counts), cards (with badges), compare screens; integrations post
leads to /api/leads/ with a token (Locust's FastHttpUser; `--client requests`: HttpUser). At the end it reports
Locust's figures per kind (client side: p50/p95/p99), how far each queue got (the
merges done of those queued and their time from queued to done; the scan's chunks), each kind's duration and CPU
time on the server (the stack's request lines: p50/p95/p99, CPU), PostgreSQL's round trip and commit times while
the load ran (a probe of its own), Locust's own CPU, the CPU seconds of each part of the stack (bench/_stack.py), the
tasks run, the messages left on the queues, and the machine's load.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER, create_database  # noqa: E402  (bench/ is the script's own folder)
from _pg import percentile  # noqa: E402
from _stack import DatabaseProbe, database_cpu, server_side, stack_cpu, tasks_logged  # noqa: E402

# Never the test databases; BENCH_DB_NAME runs it on a copy (createdb -T bench_prod h_mine_1m).
DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_prod")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
USERNAME = "bench"
KINDS = ["change list", "card", "compare", "intake"]
TARGETS_MS = {"card": 150.0, "intake": 50.0}  # p95 goals of issue 15 on the 2-core machine
READY_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stack_env(static_root: str, secret: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secret,
            "DATABASE_URL": f"{SERVER}/{DB_NAME}",
            "CELERY_BROKER_URL": REDIS,
            "CELERY_RESULT_BACKEND": REDIS,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL": "false",
            "STATIC_ROOT": static_root,
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def build_intake(password: str) -> str:
    """Create the lead pipeline, the manager login and an integration token; return the token's secret."""
    from django.contrib.auth import get_user_model

    from crm.models import IntegrationToken, Pipeline, Stage

    pipeline, created = Pipeline.objects.get_or_create(name="Incoming", kind=Pipeline.Kind.LEAD)
    if created:
        for order, (name, semantic) in enumerate([("New", "open"), ("Won", "won"), ("Lost", "lost")]):
            Stage.objects.create(pipeline=pipeline, name=name, semantic=semantic, sort_order=order)
    user_model = get_user_model()
    user = user_model.objects.filter(username=USERNAME).first() or user_model.objects.create_superuser(
        USERNAME, "bench@example.com", password
    )
    user.set_password(password)
    user.save(update_fields=["password"])
    _token, raw = IntegrationToken.objects.issue(name=f"bench load {time.time():.0f}", pipeline=pipeline)
    return raw


def start_stack(
    env: dict, *, port: int, web: int, threads: int, workers: int, interactive: int, figures: int, logs: Path,
    priority: bool, api_port: int = 0, api: int = 0, api_threads: int = 2,
) -> list[subprocess.Popen]:
    """Start the processes Procfile.prod names: gunicorn (its config file), a Celery worker on the interactive queue
    (`interactive` processes, priority 5), one on the figures queue (`figures` processes, 5; none: the interactive
    worker consumes that queue too, as before 2026-12-06 06:30), Celery workers on the bulk queue (one process each,
    priority idle), beat. Without `priority` the workers run under `nice` 5 and 10 (their own processes only), as
    before 2026-12-06."""
    bin_dir = Path(sys.executable).parent
    log = open(logs, "w")
    celery = [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel=WARNING", "--without-gossip",
              "--without-mingle"]
    workers_started = [
        ("5", [*celery, "-Q", "interactive" if figures else "interactive,figures", f"--concurrency={interactive}",
               "-n", "bench-load-interactive@%h"]),
        *([("5", [*celery, "-Q", "figures", f"--concurrency={figures}", "-n", "bench-load-figures@%h"])]
          if figures else []),
        *[("idle", [*celery, "-Q", "bulk", "--concurrency=1", "-n", f"bench-load-{index}@%h"])
          for index in range(workers)],
    ]
    started = [
        subprocess.Popen(
            [str(bin_dir / "gunicorn"), "config.wsgi", "-c", str(ROOT / "config" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", str(web), "--threads", str(threads)],
            cwd=ROOT, env=env, stdout=log, stderr=log,
        )
    ]
    if api:  # Procfile.prod's api: the intake's own gunicorn (its pool: one connection per thread)
        started.append(
            subprocess.Popen(
                [str(bin_dir / "gunicorn"), "config.wsgi", "-c", str(ROOT / "config" / "gunicorn.conf.py"),
                 "--bind", f"127.0.0.1:{api_port}", "--workers", str(api), "--threads", str(api_threads)],
                cwd=ROOT, env={**env, "WEB_THREADS": str(api_threads)}, stdout=log, stderr=log,
            )
        )
    for level, command in workers_started:
        if priority:  # as Procfile.prod: WORKER_CPU_PRIORITY (the process and its PostgreSQL backends)
            started.append(subprocess.Popen(command, cwd=ROOT, env={**env, "WORKER_CPU_PRIORITY": level},
                                            stdout=log, stderr=log))
        else:
            nice = "5" if level == "5" else "10"
            started.append(subprocess.Popen(["nice", "-n", nice, *command], cwd=ROOT, env=env, stdout=log, stderr=log))
    started.append(
        subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "config", "beat", "--loglevel=WARNING", "--schedule",
             str(logs.with_suffix(".beat")), "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
            cwd=ROOT, env=env, stdout=log, stderr=log,
        )
    )
    return started


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the stack did not answer /healthz within {READY_TIMEOUT} s")


# The kinds whose shared keys make the planted duplicates of bench_scan_workers' base (a full name alone is shared by
# hundreds of customers there, and no default rule matches on it alone).
PAIR_KINDS = ("phone", "email")
FIGURES_SAMPLE = 2000


def manager_sessions(user, count: int) -> list[str]:
    """Return the keys of `count` fresh sessions logged in as the user, one per simulated manager.

    The managers start the run already logged in, as in the middle of a working day: ten simultaneous logins cost
    10 s of CPU (PBKDF2, 1,000,000 iterations each) and would fill the run's first 20 seconds on 2 cores.
    """
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore
    keys = []
    for _index in range(count):
        session = store()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    return keys


def ensure_figures() -> None:
    """Store every customer's duplicates (the change list's counts and its filter) unless a run already did.

    `counts_rebuild` (the scan's way) re-finds a million records 300 at a time: 6 minutes on an idle machine and
    over an hour on this shared one. The base's duplicates are known by construction (customers sharing a phone or
    an email key), so they are written by one INSERT ... SELECT over the match keys, then checked against the
    finder (`duplicate_partners`, what counts_rebuild stores) on a sample; any difference stops the benchmark.
    The scan run during the load rebuilds them the engine's way anyway.
    """
    from django.db import connection

    from crm.models import Customer
    from dedup.engine.finder import duplicate_partners
    from dedup.models import DuplicatePair, MatchKey

    if DuplicatePair.objects.filter(entity="customer").exists():
        return
    started = time.monotonic()
    keys, pairs = MatchKey._meta.db_table, DuplicatePair._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO "{pairs}" (entity, record_id, other_id)
                SELECT DISTINCT 'customer', mine.record_id, theirs.record_id
                FROM "{keys}" mine JOIN "{keys}" theirs
                  ON theirs.entity = mine.entity AND theirs.kind = mine.kind AND theirs.key = mine.key
                 AND theirs.record_id <> mine.record_id
                WHERE mine.entity = 'customer' AND mine.kind = ANY(%s)
                ON CONFLICT DO NOTHING""",
            [list(PAIR_KINDS)],
        )
        cursor.execute(f'ANALYZE "{pairs}"')
    stored = DuplicatePair.objects.filter(entity="customer").count()
    print(f"figures stored:  {stored:,} duplicate pairs in {time.monotonic() - started:.1f} s", flush=True)
    rng = random.Random(7)
    last = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    sample = sorted({rng.randrange(1, last + 1) for _ in range(FIGURES_SAMPLE)} | {19, 20, 32, 33, 98, 99, 100})
    found = duplicate_partners(Customer, sample)
    have: dict[int, set[int]] = {pk: set() for pk in sample}
    for record_id, other_id in DuplicatePair.objects.filter(entity="customer", record_id__in=sample).values_list(
        "record_id", "other_id"
    ):
        have[record_id].add(other_id)
    wrong = [pk for pk in sample if have[pk] != found.get(pk, set())]
    if wrong:
        DuplicatePair.objects.filter(entity="customer").delete()
        sys.exit(f"The stored figures differ from the finder's for {len(wrong)} of {len(sample)} customers, e.g. "
                 f"{wrong[0]}: {sorted(have[wrong[0]])} vs {sorted(found.get(wrong[0], set()))}")
    print(f"figures checked: the finder agrees on {len(sample):,} sampled customers", flush=True)


def request_kind(method: str, path: str) -> str | None:
    """The Locust name of a request the stack logged (locust_load.py's URLs)."""
    if method == "POST" and path == "/api/leads/":
        return "intake"
    if path == "/admin/crm/customer/":
        return "change list"
    if path.startswith("/admin/crm/customer/"):
        return "card" if path.endswith("/change/") else "compare" if path.endswith("/compare/") else None
    return None


def messages_waiting() -> dict[str, int]:
    """Return the messages left on each Celery queue of the broker (every priority step)."""
    import redis

    from config.celery import app

    client = redis.Redis.from_url(REDIS)
    # Kombu keeps a queue's messages of each priority step in a list of its own ("<queue>\x06\x16<step>").
    return {
        queue: sum(client.llen(queue if step == 0 else f"{queue}\x06\x16{step}") for step in (0, 3, 6, 9))
        for queue in app.amqp.queues
    }


def read_stats(prefix: str) -> dict[str, dict]:
    rows = {}
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["Name"]] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--managers", type=int, default=10, help="simultaneous managers (1-3 s between clicks)")
    parser.add_argument("--integrations", type=int, default=3, help="integrations, 2 leads a second each")
    parser.add_argument("--web", type=int, default=3, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes of the bulk queue (the scan)")
    parser.add_argument("--interactive", type=int, default=2,
                        help="processes of the interactive queue's Celery worker (merges, figures after a save)")
    parser.add_argument("--figures", type=int, default=1,
                        help="processes of the figures queue's Celery worker (0: the interactive worker takes it)")
    parser.add_argument("--priority", action=argparse.BooleanOptionalAction, default=True,
                        help="the workers and their PostgreSQL backends below the web (WORKER_CPU_PRIORITY: "
                             "interactive 5, bulk idle); --no-priority: nice 5 and 10 on the workers' processes only")
    parser.add_argument("--merges", type=int, default=100, help="merges queued over the run")
    parser.add_argument("--rebuild-figures", action="store_true",
                        help="rebuild the customers' stored figures from the start, as the scan does after its join")
    parser.add_argument("--api", type=int, default=2,
                        help="processes of the intake API's own gunicorn (Procfile.prod's api; the integrations post "
                             "there); 0: the integrations post to the web's gunicorn, as before 2026-12-06 10:00")
    parser.add_argument("--api-threads", type=int, default=2, help="threads per process of the API's gunicorn")
    parser.add_argument("--client", choices=["fast", "requests"], default="fast",
                        help="Locust's HTTP client: fast (FastHttpUser, geventhttpclient) or requests (HttpUser, "
                             "python-requests, the client of every run before 2026-12-06 09:00)")
    parser.add_argument("--reuse", action="store_true", help="keep the base of an earlier run")
    parser.add_argument("--seed-only", action="store_true", help="build the base and stop")
    args = parser.parse_args()

    reused = create_database(DB_NAME, reuse=args.reuse)
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    secret = secrets.token_urlsafe(50)
    env = stack_env(str(workdir / "static"), secret)
    env["WEB_THREADS"] = str(args.threads)  # each gunicorn process's pool: one connection per thread
    os.environ.update(env)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count

    from crm.models import Customer, Lead
    from dedup import review
    from dedup.merge import merge_job_create
    from dedup.models import MergeJob, ScanRun

    from bench_scan_workers import build_base, empty_queue  # the same base as the scan benchmark

    if connection.vendor != "postgresql":
        sys.exit("The load benchmark needs PostgreSQL.")
    call_command("migrate", verbosity=0)
    built = None
    if not (reused and Customer._base_manager.count() >= args.customers):  # merged ones included
        if Customer.objects.exists():
            sys.exit(f"{DB_NAME} holds another base; run without --reuse to rebuild it.")
        built = build_base(args.customers)
        print(f"base built:      {built['seconds']:.1f} s by COPY ({built['keys']:,} match keys)", flush=True)
    ensure_figures()
    customers = Customer._base_manager.count()  # ids 1..N, merged ones included
    if args.seed_only:
        return
    password = secrets.token_urlsafe(12)
    token = build_intake(password)
    call_command("collectstatic", interactive=False, verbosity=0)
    empty_queue()  # the scan finds every group again, as on its first night
    MergeJob.objects.filter(status__in=["queued", "running"]).update(status="failed")
    from config.celery import app
    from dedup.models import FiguresPending, FiguresRefreshQueued

    app.control.purge()
    FiguresRefreshQueued.objects.all().delete()  # the messages they stood for are gone with the purge
    # Statistics as autovacuum keeps them on a live base. Without this the planner still sees the leads of earlier
    # runs' intake as absent from the match-key table (analyzed when it held only customers) and plans the lead
    # finder's candidate query as a nested loop over every lead key: 1.7 s per intake request after ~1,300 leads
    # instead of 30-60 ms (bench/README.md).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    from django.conf import settings

    sessions = manager_sessions(get_user_model().objects.get(username=USERNAME), max(1, args.managers))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_port = free_port() if args.api else 0
    processes = start_stack(
        env, port=port, web=args.web, threads=args.threads, workers=args.workers, interactive=args.interactive,
        figures=args.figures, logs=workdir / "stack.log", priority=args.priority, api_port=api_port, api=args.api,
        api_threads=args.api_threads,
    )
    first = 2 if args.api else 1
    first_bulk = first + (2 if args.figures else 1)
    groups = {
        "web": [processes[0].pid],
        **({"api": [processes[1].pid]} if args.api else {}),
        "interactive": [processes[first].pid],
        **({"figures": [processes[first + 1].pid]} if args.figures else {}),
        "bulk": [process.pid for process in processes[first_bulk:-1]],
        "beat": [processes[-1].pid],
    }
    try:
        wait_healthy(url)
        if args.api:
            wait_healthy(f"http://127.0.0.1:{api_port}")
        cpu_before, machine_before = stack_cpu(groups), psutil.cpu_times()
        load_before = os.getloadavg()
        since = datetime.now(UTC).isoformat(timespec="milliseconds")
        leads_before = Lead.objects.count()
        probe = DatabaseProbe(f"{SERVER}/{DB_NAME}")
        probe.start()
        started = time.monotonic()
        run = review.scan_start(entities=["customer"], trigger=ScanRun.Trigger.COMMAND)
        if args.rebuild_figures:
            # What the scan's join sends when it is done (the figures of every customer written afresh, one
            # transaction holding the entity's stored pairs), from the start instead of after the scan.
            from dedup.dispatch import task_send_now
            from dedup.engine.counts import REBUILD_TASK

            task_send_now(REBUILD_TASK, args=["customer"])
        seconds = args.minutes * 60
        locust = subprocess.Popen(
            [str(Path(sys.executable).parent / "locust"), "-f", str(BENCH / "locust_load.py"), "--headless",
             "--host", url, "-u", str(args.managers + args.integrations),
             "-r", str(max(1, (args.managers + args.integrations) // 10)), "-t", f"{int(seconds)}s",
             "--csv", str(workdir / "locust"), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"],
            cwd=ROOT,
            env={
                **os.environ,
                "BENCH_USERNAME": USERNAME,
                "BENCH_PASSWORD": password,
                "BENCH_SESSIONS": ",".join(sessions),
                "BENCH_SESSION_COOKIE": settings.SESSION_COOKIE_NAME,
                "BENCH_TOKEN": token,
                "BENCH_CUSTOMERS": str(customers),
                "BENCH_PAIRS_BELOW": str(customers // 2),
                "BENCH_RUN": str(int(time.time())),
                "BENCH_CLIENT": args.client,
                "BENCH_API_HOST": f"http://127.0.0.1:{api_port}" if args.api else "",
                # Locust picks users by weight: the managers and the integrations in the asked proportion.
                "BENCH_MANAGER_WEIGHT": str(args.managers),
                "BENCH_INTEGRATION_WEIGHT": str(args.integrations),
            },
            stdout=open(workdir / "locust.out", "w"),
            stderr=subprocess.STDOUT,
        )
        # Merges of planted pairs in the upper half of the base (the compare screens use the lower half),
        # queued one by one over the run as managers would click "Merge".
        admin = get_user_model().objects.get(username=USERNAME)
        merged = set(Customer._base_manager.filter(is_archived=True).values_list("pk", flat=True))
        pairs = [
            (i - 1, i)
            for i in range(customers // 2 + 20 - (customers // 2) % 20, customers + 1, 20)
            if i - 1 not in merged and i not in merged
        ]
        random.Random(time.time_ns()).shuffle(pairs)
        pairs = pairs[: args.merges]
        interval = seconds / max(1, len(pairs))
        queued, next_merge, scan_seconds = 0, time.monotonic(), None
        locust_process, locust_cpu = psutil.Process(locust.pid), 0.0
        while locust.poll() is None:
            try:  # the load tool shares the cores: its own CPU, read while it runs
                times = locust_process.cpu_times()
                locust_cpu = times.user + times.system
            except psutil.NoSuchProcess:
                pass
            if queued < len(pairs) and time.monotonic() >= next_merge:
                survivor_pk, absorbed_pk = pairs[queued]
                survivor = Customer.objects.get(pk=survivor_pk)
                merge_job_create(user=admin, survivor=survivor, absorbed=[Customer.objects.get(pk=absorbed_pk)])
                queued += 1
                next_merge += interval
            if scan_seconds is None:
                run.refresh_from_db()
                if run.status != ScanRun.Status.RUNNING:
                    scan_seconds = time.monotonic() - started
            time.sleep(0.2)
        load_after = os.getloadavg()
        probed = probe.stop()
        cpu_used = {name: seconds - cpu_before[name] for name, seconds in stack_cpu(groups).items()}
        machine_after, run_seconds = psutil.cpu_times(), time.monotonic() - started
        machine_busy = sum(
            getattr(machine_after, field) - getattr(machine_before, field)
            for field in ("user", "nice", "system", "irq", "softirq")
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT client_port, pid FROM pg_stat_activity WHERE datname = current_database() AND client_port > 0"
            )
            backends = dict(cursor.fetchall())
        database_used = database_cpu(groups, backends)
        waiting = messages_waiting()
        figures_waiting = FiguresPending.objects.count()
        merges = dict.fromkeys(["done", "queued", "running", "failed"], 0)
        to_done, to_start = [], []
        for status, created_at, started_at, finished_at in MergeJob.objects.filter(
            created_by=admin, created_at__gte=run.started_at
        ).values_list("status", "created_at", "started_at", "finished_at"):
            merges[status] = merges.get(status, 0) + 1
            if status == "done" and finished_at is not None:
                to_done.append((finished_at - created_at).total_seconds())
            if started_at is not None:  # the wait for a worker, without the merge's own time
                to_start.append((started_at - created_at).total_seconds())
        chunks = dict(run.chunks.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        run.refresh_from_db()
        leads_made = Lead.objects.count() - leads_before
    finally:
        stop(processes)

    stats = read_stats(str(workdir / "locust"))
    print(f"database:        PostgreSQL ({DB_NAME}), {customers:,} customers; broker {REDIS}")
    print(f"stack:           gunicorn {args.web} processes x {args.threads} threads"
          + (f", the API's gunicorn {args.api} processes x {args.api_threads} threads" if args.api else
             " (the intake too)") + f", {args.workers} Celery worker processes, beat; "
          f"production settings; logs in {workdir / 'stack.log'}")
    print(f"load:            {args.managers} managers, {args.integrations} integrations for {args.minutes:g} min; "
          f"Locust's {'FastHttpUser' if args.client == 'fast' else 'HttpUser'} client")
    print(f"{'kind':<12} {'requests':>9} {'errors':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    errors = 0
    for kind in [*KINDS, "login", "Aggregated"]:
        row = stats.get(kind)
        if row is None:
            continue
        errors += int(row["Failure Count"]) if kind != "Aggregated" else 0
        print(f"{('all' if kind == 'Aggregated' else kind):<12} {int(row['Request Count']):>9,} "
              f"{int(row['Failure Count']):>7} {float(row['Requests/s']):>7.1f} {row['50%']:>7} {row['95%']:>7} "
              f"{row['99%']:>7} {float(row['Max Response Time']):>7.0f}")
    for kind, target in TARGETS_MS.items():
        if kind in stats:
            p95 = float(stats[kind]["95%"])
            print(f"{kind} p95 goal:  <= {target:.0f} ms: {'MET' if p95 <= target else 'MISSED'} ({p95:.0f} ms)")
    print(f"scan:            {run.status}" + (f" in {scan_seconds:.0f} s under the load" if scan_seconds else
                                               " (still running when the load stopped)")
          + (f", {run.stats['customer']['groups']:,} groups" if "groups" in (run.stats or {}).get("customer", {}) else ""))
    print(f"stack workers:   interactive queue 1 worker x {args.interactive} processes; "
          + (f"figures queue 1 worker x {args.figures} processes; " if args.figures else "figures on the interactive "
             "worker; ") + f"bulk queue {args.workers} "
          f"worker(s) x 1 process; " + ("WORKER_CPU_PRIORITY interactive 5, bulk idle (and their PostgreSQL backends)"
                                        if args.priority else "nice 5 and 10 (the workers' processes only)"))
    print(f"interactive:     merges {merges['done']} done of {queued} queued ("
          + ", ".join(f"{n} {status}" for status, n in merges.items() if status != "done")
          + (f"); queued to done p50 {statistics.median(to_done):.1f} s, p95 {percentile(to_done, 0.95):.1f} s, "
             f"max {max(to_done):.1f} s" if to_done else "); none done")
          + (f"; queued to started p50 {statistics.median(to_start):.1f} s, p95 {percentile(to_start, 0.95):.1f} s, "
             f"max {max(to_start):.1f} s" if to_start else ""))
    print("bulk:            scan chunks " + ", ".join(f"{n} {status}" for status, n in sorted(chunks.items())))
    print(f"intake:          {leads_made:,} leads made")
    server = server_side(workdir / "stack.log", request_kind, since)
    print("server side (the stack's request lines): kind, requests, duration p50 / p95 / p99 ms, CPU p50 / p95 / mean "
          "ms")
    for kind in KINDS:
        row = server.get(kind)
        if row:
            print(f"  {kind:<12} {row['count']:>6,} {row['p50']:>7.1f} / {row['p95']:>7.1f} / {row['p99']:>7.1f}"
                  + (f"   CPU {row['cpu_p50']:.1f} / {row['cpu_p95']:.1f} / {row['cpu_mean']:.1f}" if "cpu_p50" in row
                     else ""))
    print("stack CPU s in the run (processes + children; PostgreSQL backends connected at the end, their life's): "
          + ", ".join(f"{name} {cpu_used[name]:.0f} + PG {database_used.get(name, 0):.0f}" for name in groups)
          + f"; the stack {sum(cpu_used.values()) + sum(database_used.values()):.0f}, the whole machine {machine_busy:.0f} "
          f"of {(os.cpu_count() or 1) * run_seconds:.0f} core-seconds")
    print(f"PostgreSQL probe ({probed['count']:,} samples, one every 0.1 s on a connection of its own): round trip "
          f"p50 / p95 / p99 {probed['trip_p50']:.1f} / {probed['trip_p95']:.1f} / {probed['trip_p99']:.1f} ms; "
          f"commit of one row {probed['commit_p50']:.1f} / {probed['commit_p95']:.1f} / {probed['commit_p99']:.1f} ms")
    tasks = tasks_logged(workdir / "stack.log", since)
    print("tasks run:       " + ", ".join(f"{name.rsplit('.', 1)[-1]} {n:,} ({seconds:.0f} s)"
                                          for name, (n, seconds) in sorted(tasks.items(), key=lambda item: -item[1][1])))
    print("left on queues:  " + ", ".join(f"{queue} {n:,}" for queue, n in waiting.items())
          + f"; {figures_waiting:,} records waiting for their figures")
    requests_sent = int(stats["Aggregated"]["Request Count"]) if "Aggregated" in stats else 0
    print(f"Locust's CPU:    {locust_cpu:.1f} s ({locust_cpu * 1000 / max(1, requests_sent):.2f} ms per request), on "
          "the same cores as the stack")
    print(f"errors:          {errors}")
    print(f"machine load:    {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} (1/5/15 min) at the "
          f"start, {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} at the end, on {os.cpu_count()} cores")
    failures = workdir / "locust_failures.csv"
    if errors and failures.is_file():
        print(failures.read_text()[:3000])


if __name__ == "__main__":
    main()
