#!/usr/bin/env python
"""Benchmark how much CPU-bound background processes delay a short request-like probe, by their scheduling:
none, `nice 10`, Linux's SCHED_IDLE class (what WORKER_CPU_PRIORITY gives the workers, config/worker_priority.py).

Runs standalone: `.venv/bin/python bench/bench_priority.py [--hogs 3] [--seconds 15] [--rounds 3]`. The probe does
5 `SELECT 1` on PostgreSQL (127.0.0.1:5432, database `postgres`; BENCH_PG_URL overrides the server) and about
1 ms of Python every 20 ms, as a short request does; the hogs are Python busy loops, as a scan chunk is. Phases run
in turn, so a machine shared with other work weighs on all alike. Prints the probe's p50 / p95 / p99 per phase.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pg import SERVER  # noqa: E402
from _pg import percentile  # noqa: E402

HOG = "while True:\n    sum(i * i for i in range(10000))"
PREFIX = {"none": None, "nice 10": ["nice", "-n", "10"], "idle": ["chrt", "--idle", "0"]}


def probe(seconds: float) -> list[float]:
    import psycopg

    latencies = []
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            for _ in range(5):
                connection.execute("SELECT 1").fetchone()
            sum(range(20000))  # about 1 ms of Python
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {mode: [] for mode in PREFIX}
    for _round in range(args.rounds):
        for mode, prefix in PREFIX.items():
            hogs = [subprocess.Popen([*prefix, sys.executable, "-c", HOG]) for _ in range(args.hogs)] if prefix else []
            time.sleep(1)
            try:
                results[mode] += probe(args.seconds)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
    print(f"probe: 5 queries + ~1 ms of Python every 20 ms; {args.hogs} CPU-bound processes beside it; "
          f"{args.rounds} x {args.seconds:g} s per phase")
    print(f"{'hogs':<8} {'probes':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for mode, values in results.items():
        print(f"{mode:<8} {len(values):>7} {statistics.median(values):>7.2f} {percentile(values, 0.95):>7.2f} "
              f"{percentile(values, 0.99):>7.2f}")
    load = os.getloadavg()
    print(f"machine load: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores at the end")


if __name__ == "__main__":
    main()
