#!/usr/bin/env python
"""Benchmark one record's save at scale, split into its parts: the save's own write, the index upkeep, the stored
figures' marking.

Runs standalone on an existing base (a copy of `bench_prod` or `bench_scored`, never those themselves):
`BENCH_DB_NAME=h_me_1m .venv/bin/python bench/bench_save.py [--saves 200] [--mode atomic|autocommit]`.

Each save changes a customer's first name (`customer.save()`, every field written, as the admin's form does) or a
phone's number (`phone.save()`: its owner's phone keys). The receivers the save runs are timed one by one (they are
reconnected, in their order, wrapped in a timer and a query counter):
- the index upkeep (`dedup.engine.index.upkeep._on_save`): the record's keys rewritten;
- the figures' marking (`dedup.engine.counts.refresh_pending`, on commit): the record marked as waiting for its
  stored figures and the refresh message sent unless one waits (dedup.engine.figures_messages); the refresh itself
  runs in a worker, not here;
- the save's own part: the rest (the UPDATE, and in atomic mode BEGIN/COMMIT).

`--mode atomic` (the default) saves inside `transaction.atomic()`, as the admin's change form and every service do
(the figures are marked after the commit); `autocommit` saves bare, as bench_finder.py did (the on-commit callback
runs inside the save). Prints median / p95 / max of wall and CPU milliseconds and the queries of each part; the
first WARM_UP saves (this process reading the kinds, the settings, the content types) are left out and reported
apart.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import percentile, setup_django  # noqa: E402  (bench/ is the script's own folder)

DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_dedup")
WARM_UP = 10


class Parts:
    """Wall ms, CPU ms and queries of the parts of the save under way (the innermost part counts a query)."""

    def __init__(self):
        self.stack: list[str] = ["own"]
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.queries: dict[str, int] = defaultdict(int)
        self.sql: dict[str, list[str]] = defaultdict(list)

    def reset(self) -> None:
        self.wall.clear(), self.cpu.clear(), self.queries.clear(), self.sql.clear()

    def execute(self, execute, sql, params, many, context):
        self.queries[self.stack[-1]] += 1
        self.sql[self.stack[-1]].append(sql)
        return execute(sql, params, many, context)

    def timed(self, name: str, function):
        def wrapper(*args, **kwargs):
            self.stack.append(name)
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall = (time.perf_counter() - started) * 1000
                cpu = (time.process_time() - started_cpu) * 1000
                self.stack.pop()
                self.wall[name] += wall
                self.cpu[name] += cpu
                if self.stack[-1] != "own":  # a part inside another (the figures inside the signal when
                    self.wall[self.stack[-1]] -= wall  # autocommit runs the on-commit callback at once): each
                    self.cpu[self.stack[-1]] -= cpu  # part's own time

        return wrapper


def instrument(parts: Parts) -> None:
    """Reconnect the post_save receivers of the customers and phones wrapped in timers, in their order."""
    from django.db.models.signals import post_save

    from crm.models import Customer, Phone
    from dedup.engine import counts
    from dedup.engine.index import upkeep

    for model in (Customer, Phone):
        uid = model._meta.label_lower
        wanted = [(f"dedup.engine.index.save.{uid}", upkeep._on_save, "index"),
                  (f"dedup.engine.counts.save.{uid}", counts._on_change, "figures_signal")]
        for dispatch_uid, _receiver, _name in wanted:
            post_save.disconnect(sender=model, dispatch_uid=dispatch_uid)
        others = post_save._live_receivers(model)[0]
        assert not others, f"unexpected receivers of {model.__name__}: {others}"
        for dispatch_uid, receiver, name in wanted:
            post_save.connect(parts.timed(name, receiver), sender=model, dispatch_uid=dispatch_uid, weak=False)
    # Looked up by name when the transaction's on-commit callback runs (counts.PendingRefresh).
    counts.refresh_pending = parts.timed("figures", counts.refresh_pending)


def run(label: str, items, change, mode: str, parts: Parts) -> None:
    from django.db import connection, transaction

    rows = []
    for item in items:
        change(item)
        parts.reset()
        with connection.execute_wrapper(parts.execute):
            started, started_cpu = time.perf_counter(), time.process_time()
            if mode == "atomic":
                with transaction.atomic():
                    item.save()
            else:
                item.save()
            wall = (time.perf_counter() - started) * 1000
            cpu = (time.process_time() - started_cpu) * 1000
        named = ("index", "figures_signal", "figures")
        row = {
            "total": (wall, cpu, sum(parts.queries.values())),
            "own": (wall - sum(parts.wall[n] for n in named), cpu - sum(parts.cpu[n] for n in named),
                    parts.queries["own"]),
        }
        for name in named:
            row[name] = (parts.wall[name], parts.cpu[name], parts.queries[name])
        row["sql"] = {name: list(sql) for name, sql in parts.sql.items()}
        rows.append(row)
    warm, measured = rows[:WARM_UP], rows[WARM_UP:]
    print(f"\n{label} ({mode}), {len(measured)} saves after {len(warm)} warm-up "
          f"(warm-up queries: first {warm[0]['total'][2]}, max {max(r['total'][2] for r in warm)})")
    print(f"  {'part':<16} {'wall median':>11} {'p95':>7} {'max':>7}   {'CPU median':>10} {'p95':>6}   "
          f"queries median / max")
    for name in ("total", "own", "index", "figures_signal", "figures"):
        walls = [r[name][0] for r in measured]
        cpus = [r[name][1] for r in measured]
        queries = [r[name][2] for r in measured]
        print(f"  {name:<16} {statistics.median(walls):11.2f} {percentile(walls, 0.95):7.2f} {max(walls):7.2f}   "
              f"{statistics.median(cpus):10.2f} {percentile(cpus, 0.95):6.2f}   "
              f"{statistics.median(queries):g} / {max(queries)}")
    if os.environ.get("BENCH_SQL"):
        for name, sql in measured[-1]["sql"].items():
            for statement in sql:
                print(f"    [{name}] {statement[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--mode", choices=["atomic", "autocommit"], default="atomic")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    setup_django(DB_NAME)
    from django.db.models import Max

    from crm.models import Customer, Phone
    from dedup.models import ScoringModel

    parts = Parts()
    instrument(parts)
    top = Customer.objects.aggregate(top=Max("pk"))["top"]
    rng = random.Random(args.seed)
    print(f"{DB_NAME}: customers up to #{top:,}; learned models: "
          f"{list(ScoringModel.objects.values_list('entity', flat=True)) or 'none'}; "
          f"load {open('/proc/loadavg').read().split()[:3]}")
    count = args.saves + WARM_UP
    customers = list(Customer.objects.filter(pk__in=rng.sample(range(1, top + 1), count * 2))[:count])

    def rename(customer):
        customer.first_name = customer.first_name + "x" if len(customer.first_name) < 30 else "Ivan"

    run("customer.save()", customers, rename, args.mode, parts)
    phones = list(Phone.objects.filter(object_id__in=[c.pk for c in customers])[:count])

    def renumber(phone):
        phone.number = phone.number.rstrip() if phone.number.endswith(" ") else phone.number + " "

    run("phone.save()", phones, renumber, args.mode, parts)
    print(f"load {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
