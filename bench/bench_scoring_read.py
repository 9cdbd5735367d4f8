#!/usr/bin/env python
"""Reading and preparing a base for the scored matcher, then learning and the scan's scored chunk, on PostgreSQL.

Runs standalone against a database that already holds customers (a copy of `bench_scored` or one built by
bench_scoring_pg.py): `BENCH_DB_NAME=h_x_1m .venv/bin/python bench/bench_scoring_read.py [--steps read learn scan]`.
Each step runs in a child process of its own, so each peak memory (max RSS) is that step's alone:
- read: `entity.read_entity` (the base read and every value prepared for matching), then the records kept;
- learn: `entity.scoring_learn(entity="customer")` (read, learn, score, group, store the model);
- scan: `scan_scored.scored_groups("customer")` (the scan's scored chunk with the stored model).
Prints CPU and wall seconds, the peak, the candidate pairs and groups, and a digest of the groups (equal digests:
the same groups, member for member), so the code before and after a change can be run back to back.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _pg import setup_django  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "h_scan_scoring")
ENTITY = "customer"


def _digest(groups) -> str:
    text = ";".join(",".join(map(str, sorted(group))) for group in sorted(sorted(group) for group in groups))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def child(step: str) -> dict:
    setup_django(DB_NAME)
    from dedup import registry
    from dedup.engine import match_settings
    from dedup.engine.scoring import entity

    spec = registry.get(ENTITY)
    match_settings.refresh()
    started, cpu = time.perf_counter(), time.process_time()
    result: dict = {"step": step}
    if step == "read":
        pks, read = entity.read_entity(spec, entity.entity_schema(spec))
        result.update(records=len(pks), distinct=[len({id(value) for value in column if value})
                                                  for column in read.columns])
    elif step == "learn":
        learned = entity.scoring_learn(entity=ENTITY)
        result.update(records=len(learned.pks), candidate_pairs=len(learned.result.pairs),
                      groups=len(learned.groups), digest=_digest(learned.groups),
                      timings={key: round(value, 1) for key, value in learned.result.timings.items()})
    else:
        from dedup.engine import scan_scored

        groups = scan_scored.scored_groups(ENTITY)
        result.update(groups=len(groups), digest=_digest(group.ids for group in groups))
    result.update(wall_seconds=round(time.perf_counter() - started, 1),
                  cpu_seconds=round(time.process_time() - cpu, 1),
                  peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", nargs="+", choices=("read", "learn", "scan"), default=["read", "learn", "scan"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child)))
        return
    for step in args.steps:
        load = os.getloadavg()[0]
        process = subprocess.run([sys.executable, __file__, "--child", step], capture_output=True, text=True)
        lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode or not lines:
            print(process.stderr[-3000:])
            sys.exit(1)
        result = json.loads(lines[-1][len("RESULT "):])
        result["load"] = f"{load:.1f} -> {os.getloadavg()[0]:.1f}"
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
