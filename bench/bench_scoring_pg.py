#!/usr/bin/env python
"""The scored matcher on PostgreSQL: learn the customers' weights and find their groups, from the database.

Runs standalone: `.venv/bin/python bench/bench_scoring_pg.py [--size 100000] [--reuse]`. Uses its own database
(BENCH_DB_NAME, default `h_scan_scoring`, on 127.0.0.1:5432, user postgres; BENCH_PG_URL overrides the server).
The synthetic CRM set of bench/bench_scoring.py (bench/_crm_synth.py, seed 7) is COPYed in as customers with
their company, phone (E.164 read in the record's own country, as Phone.save stores it) and email, then VACUUM
ANALYZE. Then, in a child process of its own (its peak memory is its own): `scoring_model_learn(entity=
"customer")`, which reads the base (entity.read_entity), blocks it, learns m, u and the prior (m from a sample
of the candidate pairs) and stores the model with its value frequencies; then what `scoring_learn` and the scan
do next, every candidate pair scored with that model and grouped. Prints the time of each step (learning alone,
then the scan), the peak memory and the groups' pairwise precision and recall against the planted truth. The
customer entity registers name, company, phone, email and messenger only (no birth date, no country), so fewer
duplicates are findable than in bench_scoring.py.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import copy_rows, create_database, setup_django  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "h_scan_scoring")


def build(size: int) -> None:
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection
    from psycopg.types.json import Jsonb

    from _crm_synth import generate
    from crm.models import Company, Customer, Email, Phone
    from dedup.engine import normalize

    call_command("migrate", verbosity=0)
    began = time.monotonic()
    records, _people, _kinds = generate(size)
    print(f"generated {len(records):,} records in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)
    began = time.monotonic()
    companies: dict[str, int] = {}
    for record in records:
        if record["company"] and record["company"] not in companies:
            companies[record["company"]] = len(companies) + 1
    copy_rows(Company, ((pk, name) for name, pk in companies.items()), fields=["id", "name"])
    copy_rows(Customer, ((record["id"] + 1, record["first_name"], record["last_name"],
                          companies.get(record["company"]), Jsonb({"country": record["country"]})) for record in records),
              fields=["id", "first_name", "last_name", "company_id", "custom_fields"])
    customer_type = ContentType.objects.get_for_model(Customer).pk
    copy_rows(Phone, ((customer_type, record["id"] + 1, record["phone"],
                       normalize.phone_e164(record["phone"], record["country"]) or "", True)
                      for record in records if record["phone"]),
              fields=["content_type_id", "object_id", "number", "e164", "is_primary"])
    copy_rows(Email, ((customer_type, record["id"] + 1, record["email"], True)
                      for record in records if record["email"]),
              fields=["content_type_id", "object_id", "address", "is_primary"])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"COPY and VACUUM ANALYZE in {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)


def child(size: int, truth_too: bool = True, learn_only: bool = False) -> None:
    setup_django(DB_NAME)
    from _crm_synth import generate
    from dedup import registry
    from dedup.engine.scoring import entity, matcher

    spec = registry.get("customer")
    started, cpu = time.perf_counter(), time.process_time()
    entity.read_entity(spec, entity.entity_schema(spec))  # timed alone, then dropped (the peak is the learn's)
    read_seconds, read_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    learned = entity.scoring_model_learn(entity="customer")
    learn_seconds, learn_cpu = time.perf_counter() - started, time.process_time() - cpu
    learn_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "records": len(learned.pks), "read_seconds": round(read_seconds, 1), "read_cpu_seconds": round(read_cpu, 1),
        "learn_seconds": round(learn_seconds, 1), "learn_cpu_seconds": round(learn_cpu, 1),
        "learn_peak_mb": round(learn_peak),
        "learn_timings": {key: round(value, 1) for key, value in learned.timings.items()},
        "candidate_pairs": len(learned.pairs)}
    print("LEARNED " + json.dumps(result), flush=True)
    if learn_only:
        print("RESULT " + json.dumps(result))
        return
    # Then what the scan does after learning (scoring_learn): every candidate pair scored with the model, grouped.
    started, cpu = time.perf_counter(), time.process_time()
    found = matcher.find_groups(learned.records, model=learned.model, threshold=learned.stored.threshold,
                                pairs=learned.pairs)
    scan_seconds, scan_cpu = time.perf_counter() - started, time.process_time() - cpu
    groups = [[learned.pks[row] for row in group] for group in found.groups]
    result.update({
        "then_scan_seconds": round(scan_seconds, 1), "then_scan_cpu_seconds": round(scan_cpu, 1),
        "scan_timings": {key: round(value, 1) for key, value in found.timings.items()},
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    if truth_too:  # the planted truth: the set generated again (Faker: six CPU-minutes at 1,000,000)
        records, people, _kinds = generate(size)
        found = {tuple(sorted((a - 1, b - 1))) for group in groups for a, b in combinations(group, 2)}
        by_person = defaultdict(list)
        for record, person in zip(records, people):
            by_person[person].append(record["id"])
        truth = {pair for ids in by_person.values() for pair in combinations(sorted(ids), 2)}
        hits = len(found & truth)
        precision = hits / len(found) if found else 1.0
        recall = hits / len(truth) if truth else 1.0
        result.update(precision=round(precision, 4), recall=round(recall, 4),
                      f1=round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database built by an earlier run")
    parser.add_argument("--no-truth", action="store_true",
                        help="time only: skip generating the set again for precision and recall")
    parser.add_argument("--learn-only", action="store_true", help="time learning only, not the scan after it")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.size, truth_too=not args.no_truth, learn_only=args.learn_only)
        return
    existed = create_database(DB_NAME, reuse=args.reuse)
    setup_django(DB_NAME)
    if not existed:
        build(args.size)
    process = subprocess.run([sys.executable, __file__, "--child", "--size", str(args.size),
                              *(["--no-truth"] if args.no_truth else []),
                              *(["--learn-only"] if args.learn_only else [])], capture_output=True, text=True)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        print(process.stderr[-3000:])
        sys.exit(1)
    result = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(result))
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
