"""A step of the matcher run in a forked child process while this one goes on: a second core for Python work.

The threads of workers.py get a second core only where numpy or rapidfuzz release the GIL; blocking's token
layout and comparing's per-value Python (a company graded pair by pair, a name's hard cases) take it in turn.
A forked child shares this process's records and arrays copy-on-write (nothing pickled on the way in; the
cycle collector is off while the matcher runs, so the child copies only the pages it writes: the reference
counts of the values it reads) and sends its result back pickled through a pipe (arrays of pairs, levels and
codes). ``os.fork`` itself, not multiprocessing: Celery's prefork workers are daemonic, and multiprocessing
refuses a daemonic process children; a plain fork does not ask. The child never returns into the caller's code:
it ends with ``os._exit`` whatever happens (no atexit handler, no database connection closed under the parent).

A failure in the child reaches the caller as ``ChildFailed`` with the child's traceback (or the signal that
killed it) when the result is read; a caller that leaves early (an exception of its own) ends the child with
``cancel``. Nothing waits on a child that is gone: the pipe's end of file comes when the child ends, however it
ends, since this process holds no writing end of it.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class ChildFailed(RuntimeError):
    """The forked child that ran a step of the matcher failed or was killed."""


def available() -> bool:
    """Tell whether this platform forks (Linux, macOS)."""
    return hasattr(os, "fork")


class Child(Generic[R]):
    """``function`` running in a forked child; ``result()`` waits for its value."""

    def __init__(self, function: Callable[[], R], name: str):
        self.name = name
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, send, and end here whatever happens
            status = 1
            try:
                os.close(read_end)
                try:
                    payload = (True, function())
                except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
                    payload = (False, "".join(traceback.format_exception(error)))
                with os.fdopen(write_end, "wb") as stream:
                    pickle.dump(payload, stream, protocol=pickle.HIGHEST_PROTOCOL)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid = pid
        self._read_end = read_end
        # The child's CPU seconds (user and system), known once it has ended.
        self.cpu_seconds = 0.0

    def result(self) -> R:
        """Return the child's value (waiting for it); raise ChildFailed when it failed or died."""
        try:
            with os.fdopen(self._read_end, "rb") as stream:
                self._read_end = None
                try:
                    ok, value = pickle.load(stream)
                except (EOFError, pickle.UnpicklingError):
                    ok, value = False, None
        finally:
            status = self._wait()
        if ok:
            return value
        if value is None:
            how = (f"was killed by signal {-status}" if status < 0 else f"exited with status {status}")
            raise ChildFailed(f"the child process of the matcher's {self.name} {how} before it sent a result")
        raise ChildFailed(f"the child process of the matcher's {self.name} failed:\n{value}")

    def cancel(self) -> None:
        """End the child (the caller no longer wants its result)."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._read_end is not None:
            os.close(self._read_end)
            self._read_end = None
        self._wait()

    def _wait(self) -> int:
        pid, self._pid = self._pid, None
        if pid is None:
            return 0
        _pid, status, usage = os.wait4(pid, 0)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        return os.waitstatus_to_exitcode(status)


def start(function: Callable[[], R], *, name: str) -> Child[R]:
    """Run ``function`` in a forked child; call ``result()`` on what is returned (or ``cancel()``)."""
    sys.stdout.flush()
    sys.stderr.flush()  # nothing buffered here is written twice by the child
    return Child(function, name)
