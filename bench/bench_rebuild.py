#!/usr/bin/env python
"""Benchmark the background rebuild of the match-key index (`dedup.engine.index.build_run`) on PostgreSQL.

Runs standalone: `.venv/bin/python bench/bench_rebuild.py [--customers 100000] [--reuse]`.
It builds the customers' base the way bench/bench_scan.py does (COPY of companies, customers, phones, emails and
handles, indexed through the engine's bulk path) in its own database (`h_orders` unless BENCH_DB_NAME says
otherwise; BENCH_PG_URL overrides the server), then times what an administrator's change sets off:

- a rule needing new kinds of keys (fuzzy full name: blocking and name keys), queued as an IndexBuild and run;
- a change of the placeholder list: every kind of every customer's keys rewritten (IndexBuild of all kinds).

With `--workers N` (N > 1) the placeholder rebuild is queued in parts (`builds.PART_RECORDS` set to split the
base into N) and each part runs in a process of its own at the same time, as N Celery workers would.

A base above `builds.PART_RECORDS` is queued in parts; this process runs them one after the other, as one worker
would. `--rebuilds rule` (or `placeholders`) times only that one.

Prints, per rebuild: records, key rows, seconds, records per second, the time extrapolated to a million records
(the issue's bound: 2 minutes per million), the CPU seconds of this process and of the PostgreSQL backend serving
it (read from /proc: the server runs on this machine), and records per CPU second of both.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

os.environ.setdefault("BENCH_DB_NAME", "h_orders")
import bench_scan  # noqa: E402  (the base builder shared with the scan benchmark)


def run_build(spec, kinds, reason) -> dict:
    from dedup.engine import index
    from dedup.engine.index.builds import build_queue
    from dedup.models import IndexBuild, MatchKey

    build = build_queue(spec=spec, kinds=kinds, reason=reason)  # not in a transaction: the task would be sent
    # A base above builds.PART_RECORDS is queued in parts: this process runs them one after the other, as one
    # worker would.
    parts = list(IndexBuild.objects.filter(batch=build.pk).order_by("id")) or [build]
    server = backend_cpu()
    cpu = time.process_time()
    began = time.monotonic()
    for part in parts:
        index.build_run(build_id=part.pk)
    seconds = time.monotonic() - began
    cpu = time.process_time() - cpu
    server = backend_cpu() - server
    finished = IndexBuild.objects.filter(pk__in=[part.pk for part in parts])
    done = finished.filter(status=IndexBuild.Status.DONE).count()
    total = sum(finished.values_list("total", flat=True))
    rows = MatchKey.objects.filter(entity=spec.key, kind__in=kinds).count() if kinds else MatchKey.objects.filter(
        entity=spec.key).count()
    status = IndexBuild.Status.DONE.value if done == len(parts) else f"{done}/{len(parts)} parts done"
    return {"records": total, "status": status + (f" ({len(parts)} parts)" if len(parts) > 1 else ""),
            "seconds": seconds, "rows": rows, "cpu": cpu, "server_cpu": server}


def backend_cpu() -> float:
    """CPU seconds (user + system) the PostgreSQL backend serving this process has used so far (read from
    /proc: the server runs on this machine), or 0 when it cannot be read."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_parts(spec, reason, workers: int) -> dict:
    """Queue a rebuild of every kind in `workers` parts and run them in as many processes at once."""
    import subprocess

    from dedup.engine.index import builds
    from dedup.models import IndexBuild, MatchKey

    total = builds.entity_records_count(spec)
    builds.PART_RECORDS = -(-total // workers)
    first = builds.build_queue(spec=spec, kinds=None, reason=reason)
    parts = list(IndexBuild.objects.filter(batch=first.pk).order_by("id")) or [first]
    import resource

    children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    children = [
        subprocess.Popen([sys.executable, __file__, "--run-part", str(part.pk)]) for part in parts
    ]
    for child in children:
        child.wait()
    seconds = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children_cpu.ru_utime - children_cpu.ru_stime
    done = IndexBuild.objects.filter(pk__in=[part.pk for part in parts], status=IndexBuild.Status.DONE).count()
    return {"records": total, "seconds": seconds, "rows": MatchKey.objects.filter(entity=spec.key).count(),
            "status": f"{done}/{len(parts)} parts done", "cpu": cpu, "server_cpu": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="Keep the base built by an earlier run.")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rebuilds", default="rule,placeholders",
                        help="Which rebuilds to time: rule (a new kind), placeholders (every kind), or both.")
    parser.add_argument("--run-part", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_part:
        bench_scan.setup_django()
        import dedup.engine.index.services as services
        from dedup.engine import index

        services.task_send = lambda *a, **k: None
        index.build_run(build_id=args.run_part)
        return

    existed = bench_scan.create_database(bench_scan.DB_NAME, reuse=args.reuse)
    # The tasks the services send (the figures' rebuild) are run in this process, as a worker would.
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    bench_scan.setup_django()
    from celery import current_app
    from django.core.management import call_command

    from crm.models import Customer
    from dedup import registry
    from dedup.engine import index
    from dedup.models import Condition, IndexBuild, Rule

    current_app.conf.task_always_eager = False
    call_command("migrate", verbosity=0)
    if not (args.reuse and existed and Customer.objects.count() >= args.customers):
        bench_scan.reset_base()
        companies = bench_scan.companies_for(args.customers)
        print(f"building {args.customers:,} customers", file=sys.stderr, flush=True)
        build = bench_scan.build_range(1, args.customers + 1, companies)
        bench_scan.analyze()
        print(f"base: copy {build['copy_seconds']} s, index {build['index_seconds']} s, {build['keys']:,} keys",
              file=sys.stderr)
    spec = registry.get("customer")

    # Sending the figures' rebuild to a broker nobody listens to would only wait: the bench times the keys.
    import dedup.engine.index.services as services

    services.task_send = lambda *args, **kwargs: None
    import dedup.engine.index.builds as builds

    builds.task_send = lambda *args, **kwargs: None

    results = []
    Rule.objects.filter(entity="customer", name="bench: similar full name").delete()
    began, cpu = time.monotonic(), time.process_time()
    from dedup.engine.index.plan import key_kinds, stored_kinds

    kept = key_kinds(stored_kinds(spec))
    index.sync_plan(spec, inline=True)  # a reused base made by older code may lack kinds: filled here, untimed
    print(f"kinds synced in {time.monotonic() - began:.1f} s ({time.process_time() - cpu:.1f} s CPU); "
          f"filled: {sorted(index.indexed_kinds(spec) - kept) or 'none'}", file=sys.stderr, flush=True)
    wanted = set(args.rebuilds.split(","))
    rule = Rule.objects.create(entity="customer", name="bench: similar full name", active=False, position=99)
    before = index.indexed_kinds(spec)
    Condition.objects.create(rule=rule, field="full_name", method="fuzzy", threshold=90)  # sync_plan queues
    added = index.indexed_kinds(spec) - before
    queued = IndexBuild.objects.filter(entity="customer").order_by("-id").first()
    print(f"rule saved: new kinds {sorted(added)}, rebuild #{queued.pk if queued else '-'} "
          f"{queued.get_status_display() if queued else 'inline'}", file=sys.stderr)
    if "rule" in wanted:
        results.append(
            ("rule: new kinds " + ", ".join(sorted(added)), run_build(spec, added, IndexBuild.Reason.RULE))
        )
    if "placeholders" in wanted:
        results.append(("placeholders: every kind", run_build(spec, None, IndexBuild.Reason.PLACEHOLDERS)))
    if args.workers > 1:
        results.append((f"placeholders: every kind, {args.workers} workers",
                         run_parts(spec, IndexBuild.Reason.PLACEHOLDERS, args.workers)))
    rule.delete()
    index.sync_plan(spec, inline=True)

    load = os.getloadavg()
    print(f"\nIndex rebuilds in the background (PostgreSQL, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    print("CPU: this process's CPU seconds, and the PostgreSQL backend's serving it; per CPU second: records per "
          "CPU second of both together (what one worker and its connection would do on cores of their own)")
    print(f"{'rebuild':<48} {'records':>9} {'key rows':>10} {'seconds':>8} {'records/s':>10} {'s per 1M':>9} "
          f"{'CPU':>6} {'PG CPU':>7} {'rec/CPU s':>10} status")
    for name, result in results:
        rate = result["records"] / result["seconds"] if result["seconds"] else 0
        per_million = 1_000_000 / rate if rate else 0
        cpu, server = result.get("cpu"), result.get("server_cpu")
        both = (cpu or 0) + (server or 0)
        cpu_text = f"{cpu:>6.1f} {server:>7.1f} {result['records'] / both:>10,.0f}" if both else " " * 26
        print(f"{name:<48} {result['records']:>9,} {result['rows']:>10,} {result['seconds']:>8.1f} {rate:>10,.0f} "
              f"{per_million:>9.0f} {cpu_text} {result['status']}")


if __name__ == "__main__":
    main()
