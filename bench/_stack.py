"""Where the production stack's CPU went during a load run, and its requests as the server saw them.

For bench_load.py: the load's tails on 2 cores come from the web processes, the Celery workers and PostgreSQL
sharing them, so the run reports the CPU seconds of each part of the stack (its processes and their children, and
the PostgreSQL backends serving each, matched by the client port of their connections) and, from the stack's JSON
request lines, each kind's duration and CPU time on the server: the gap between Locust's time and the server's is
the wait for a gunicorn thread; the gap between the server's duration and its CPU, the wait for a core or the
database.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from _pg import percentile


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu(process: psutil.Process, *, children: bool = True) -> float:
    """CPU seconds of the process (user + system), with its reaped children's when asked."""
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system + (times.children_user + times.children_system if children else 0.0)


def stack_cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """Return the CPU seconds used so far by each group of the stack's processes (by their pids) and their children:
    a process's own and its reaped children's time, so a recycled gunicorn worker still counts."""
    return {name: sum(_cpu(process) for pid in pids for process in _tree(pid)) for name, pids in groups.items()}


def database_cpu(groups: dict[str, list[int]], backends: dict[int, int]) -> dict[str, float]:
    """Return the CPU seconds of the PostgreSQL backends (backends: {client port: backend pid}, from
    pg_stat_activity) connected to each group's processes now: their whole life's, which is the run's for a pool's
    connections. Reading another user's process needs the rights to (root here); without them it counts 0."""
    totals = {}
    for name, pids in groups.items():
        ports = set()
        for pid in pids:
            for process in _tree(pid):
                try:
                    ports.update(c.laddr.port for c in process.net_connections(kind="tcp") if c.raddr)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        seconds = 0.0
        for port in ports & set(backends):
            try:
                seconds += _cpu(psutil.Process(backends[port]), children=False)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        totals[name] = seconds
    return totals


def log_entries(log: Path, logger: str, since: str):
    """Yield the stack's JSON lines of a logger (mergewise.request, mergewise.task) logged at or after `since` (an
    ISO timestamp)."""
    with open(log, errors="replace") as handle:
        for line in handle:
            if f'"{logger}"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("ts", "") >= since:
                yield entry


def server_side(log: Path, kind_of: Callable[[str, str], str | None], since: str) -> dict[str, dict[str, float]]:
    """Return per kind of request (kind_of(method, path)) the count, p50/p95/p99 duration and p50/p95/mean CPU
    milliseconds of the stack's request lines logged at or after `since`."""
    durations: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for entry in log_entries(log, "mergewise.request", since):
        kind = kind_of(entry.get("method", ""), entry.get("path", ""))
        if kind is None:
            continue
        durations.setdefault(kind, []).append(float(entry["duration_ms"]))
        if "cpu_ms" in entry:
            cpus.setdefault(kind, []).append(float(entry["cpu_ms"]))
    return {
        kind: {
            "count": len(values),
            "p50": statistics.median(values),
            "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99),
            **(
                {"cpu_p50": statistics.median(cpus[kind]), "cpu_p95": percentile(cpus[kind], 0.95),
                 "cpu_mean": statistics.fmean(cpus[kind])}
                if cpus.get(kind) else {}
            ),
        }
        for kind, values in durations.items()
    }


def tasks_logged(log: Path, since: str) -> dict[str, tuple[int, float]]:
    """Return {task name: (runs, seconds)} from the stack's task lines logged at or after `since`."""
    runs: dict[str, tuple[int, float]] = {}
    for entry in log_entries(log, "mergewise.task", since):
        count, seconds = runs.get(entry["task"], (0, 0.0))
        runs[entry["task"]] = (count + 1, seconds + float(entry.get("duration_ms", 0)) / 1000)
    return runs


class DatabaseProbe(threading.Thread):
    """Time PostgreSQL's answers while the load runs: every `every` seconds, a round trip (`SELECT 1`) and a commit
    (a one-row INSERT in autocommit, which waits for the WAL's flush to the disk) on a connection of its own.

    An intake post makes about ten round trips and commits once or twice; on a machine whose disk flushes in 4 ms
    and which the scan fills with writes, how long those take is part of the post's p95, and the request's CPU time
    does not show it. The probe's figures say what any request's round trip and commit cost at that moment.
    """

    def __init__(self, url: str, *, every: float = 0.1):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.samples: list[tuple[float, float, float]] = []  # (monotonic time, round trip ms, commit ms)
        self._finished = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS bench_probe (at timestamptz NOT NULL)")
            connection.execute("TRUNCATE bench_probe")
            while not self._finished.wait(self.every):
                started = time.perf_counter()
                connection.execute("SELECT 1").fetchone()
                answered = time.perf_counter()
                connection.execute("INSERT INTO bench_probe VALUES (now())")
                committed = time.perf_counter()
                self.samples.append((started, (answered - started) * 1000, (committed - answered) * 1000))

    def stop(self) -> dict[str, float]:
        """Stop the probe; return the round trip's and the commit's p50/p95/p99 ms and the samples' count."""
        self._finished.set()
        self.join(timeout=10)
        trips = [trip for _at, trip, _commit in self.samples] or [0.0]
        commits = [commit for _at, _trip, commit in self.samples] or [0.0]
        return {
            "count": len(self.samples),
            **{f"trip_p{int(share * 100)}": percentile(trips, share) for share in (0.5, 0.95, 0.99)},
            **{f"commit_p{int(share * 100)}": percentile(commits, share) for share in (0.5, 0.95, 0.99)},
        }
