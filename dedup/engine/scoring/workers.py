"""Threads for the matcher's independent steps: fields graded side by side, a pair array's chunks at once.

The heavy parts of comparing and blocking are numpy (sorts, gathers, comparisons) and rapidfuzz's ``cpdist``,
which release the GIL while they run: a second thread gets a second core there, with no process to start and
nothing pickled (the records and the pair arrays are shared as they are). What runs in Python (a name's hard
cases, a distinct value prepared) still takes the GIL in turn, so the gain is below the cores' count; a large
base learned from scratch has its blocking and most of its comparing done by forked children besides
(forked.py: os.fork, which Celery's daemonic prefork workers may call, unlike multiprocessing).

Every step run here computes the same values in any order (each call writes only its own result), so the
groups are the same with one worker or several (tests/dedup/test_scoring_workers.py).

``DEDUP_SCORING_WORKERS`` (settings, from the environment) sets how many threads: 0, the default, means the
cores this process may use, at most ``MAX_WORKERS``; 1 runs everything in the calling thread, as before (and
forks no child).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Threads at most by default: past a few, the steps' Python parts (GIL-bound) leave them waiting, and each
# thread holds its own intermediate arrays (memory grows with the count).
MAX_WORKERS = 4

_override: list[int] = []
# Set on the threads run_map starts: a step run there runs its own parts in that thread (no pool in a pool).
_inside = threading.local()


def count() -> int:
    """Return how many threads the matcher's steps may use (at least 1; 1 on a worker's own thread)."""
    if getattr(_inside, "worker", False):
        return 1
    if _override:
        return _override[-1]
    configured = _configured()
    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def _configured() -> int:
    try:
        from django.conf import settings

        value = getattr(settings, "DEDUP_SCORING_WORKERS", 0)
    except Exception:  # settings not configured (plain unit use)
        value = os.environ.get("DEDUP_SCORING_WORKERS", 0)
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


@contextmanager
def using(workers: int):
    """Run the matcher's steps inside the block with this many threads (tests compare 1 with 2)."""
    _override.append(max(int(workers), 1))
    try:
        yield
    finally:
        _override.pop()


def run_map(function: Callable[[T], R], items: Iterable[T], *, workers: int | None = None) -> list[R]:
    """Return ``[function(item) for item in items]``, the items taken by the threads in their order (put the
    longest first: a thread free takes the next one)."""
    items = list(items)
    workers = min(count() if workers is None else workers, len(items))
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scoring", initializer=_mark) as pool:
        return list(pool.map(function, items))


def _mark() -> None:
    _inside.worker = True


def background(function: Callable[[], R]) -> Callable[[], R]:
    """Start ``function`` on a thread of its own when there are several workers, else call it now; return a
    getter of its result (which waits for it, and raises what it raised)."""
    if count() <= 1:
        result = function()
        return lambda: result
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring", initializer=_mark)
    future = pool.submit(function)
    pool.shutdown(wait=False)
    return future.result


def chunks(size: int, *, minimum: int) -> Sequence[slice]:
    """Return slices cutting ``size`` items into one chunk per worker (fewer, each at least ``minimum``)."""
    parts = max(1, min(count(), size // max(minimum, 1)))
    bounds = [size * part // parts for part in range(parts + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
