#!/usr/bin/env python
"""Time `counts_rebuild` (every record's stored duplicates afresh, as after a scan or a rule change) on an existing
PostgreSQL base, and check the figures it stored against the finder on a sample of records.

Runs standalone on a copy of the load benchmark's base (never `bench_prod` itself: it rewrites the figures):
`createdb -h 127.0.0.1 -U postgres -T bench_prod h_mine_1m`, then
`BENCH_DB_NAME=h_mine_1m .venv/bin/python bench/bench_counts_rebuild.py [--entity customer] [--sample 2000]`.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER  # noqa: E402  (bench/ is the script's own folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", default="customer")
    parser.add_argument("--sample", type=int, default=2000, help="records whose stored figures are checked")
    args = parser.parse_args()
    name = os.environ.get("BENCH_DB_NAME", "")
    if not name or name in {"bench_prod", "test"}:
        sys.exit("Name a copy of the base in BENCH_DB_NAME (this rewrites its stored figures).")
    os.environ["DATABASE_URL"] = f"{SERVER}/{name}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from dedup import registry
    from dedup.engine.counts import counts_rebuild
    from dedup.engine.finder import duplicate_partners
    from dedup.models import DuplicatePair, MatchKey

    call_command("migrate", verbosity=0)
    spec = registry.get(args.entity)
    records = MatchKey.objects.filter(entity=spec.key).values("record_id").distinct().count()
    load_before = os.getloadavg()
    queries = {"count": 0, "seconds": 0.0}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries["count"] += 1
            queries["seconds"] += time.perf_counter() - started

    started, started_cpu = time.perf_counter(), time.process_time()
    with connection.execute_wrapper(timed):
        pairs = counts_rebuild(entity=spec.key)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    load_after = os.getloadavg()

    rng = random.Random(7)
    ids = list(MatchKey.objects.filter(entity=spec.key).values_list("record_id", flat=True)[:1])
    last = MatchKey.objects.filter(entity=spec.key).order_by("-record_id").values_list("record_id", flat=True)[0]
    sample = sorted({rng.randrange(ids[0], last + 1) for _ in range(args.sample)})
    found = duplicate_partners(spec.model, sample)
    stored: dict[int, set[int]] = {pk: set() for pk in sample}
    for record_id, other_id in DuplicatePair.objects.filter(entity=spec.key, record_id__in=sample).values_list(
        "record_id", "other_id"
    ):
        stored[record_id].add(other_id)
    wrong = [pk for pk in sample if stored[pk] != found.get(pk, set())]

    print(f"database:     PostgreSQL ({name}), {records:,} {spec.key} records in the index")
    print(f"rebuild:      {pairs:,} pairs in {seconds:.1f} s wall, {cpu:.1f} s CPU of this process, "
          f"{queries['count']:,} queries ({queries['seconds']:.1f} s of SQL)")
    print(f"checked:      {len(sample):,} sampled records, the finder " + (
        "agrees on every one" if not wrong else f"DIFFERS on {len(wrong)}, e.g. {wrong[:5]}"))
    print(f"machine load: {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
