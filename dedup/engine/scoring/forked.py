"""A step of the matcher run in a forked child process while this one goes on: a second core for Python work.

The threads of workers.py get a second core only where numpy or rapidfuzz release the GIL; blocking's token
layout and comparing's per-value Python (a name's hard cases, a value laid out for the graders) take it in turn.
A forked child shares this process's records and arrays copy-on-write (nothing pickled on the way in; the
cycle collector is off while the matcher runs, so the child copies only the pages it writes: the reference
counts of the values it reads) and sends its results back pickled through a pipe (arrays of pairs, levels and
codes); what it needs later from this process (a model learned meanwhile) comes through a second pipe.
``os.fork`` itself, not multiprocessing: Celery's prefork workers are daemonic, and multiprocessing refuses a
daemonic process children; a plain fork does not ask. The child never returns into the caller's code: it ends
with ``os._exit`` whatever happens (no atexit handler, no database connection closed under the parent).

A failure in the child reaches the caller as ``ChildFailed`` with the child's traceback (or the signal that
killed it) when it next reads from the child; a caller that leaves early (an exception of its own) ends the
child with ``cancel``. Nothing waits on a child that is gone: the pipe's end of file comes when the child ends,
however it ends, since this process holds no writing end of it; and a child whose parent is gone reads the end
of file of the other pipe and ends.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class ChildFailed(RuntimeError):
    """The forked child that ran a step of the matcher failed or was killed."""


def available() -> bool:
    """Tell whether this platform forks (Linux, macOS)."""
    return hasattr(os, "fork")


class Link:
    """The child's side: ``send`` a value to the parent before the end, ``receive`` one the parent sent."""

    def __init__(self, up, down_end: int):
        self._up = up
        self._down_end = down_end
        self._down = None

    def send(self, value: Any) -> None:
        pickle.dump((True, value), self._up, protocol=pickle.HIGHEST_PROTOCOL)
        self._up.flush()

    def receive(self) -> Any:
        if self._down is None:
            self._down = os.fdopen(self._down_end, "rb")
        return pickle.load(self._down)


class Child(Generic[R]):
    """``function(link)`` running in a forked child: ``receive()`` its values in turn, ``send()`` it one,
    ``result()`` waits for its return value."""

    def __init__(self, function: Callable[[Link], R], name: str):
        self.name = name
        up_read, up_write = os.pipe()
        down_read, down_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, send, and end here whatever happens
            status = 1
            try:
                os.close(up_read)
                os.close(down_write)
                with os.fdopen(up_write, "wb") as up:
                    try:
                        payload = (True, function(Link(up, down_read)))
                    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
                        payload = (False, "".join(traceback.format_exception(error)))
                    pickle.dump(payload, up, protocol=pickle.HIGHEST_PROTOCOL)
                status = 0
            finally:
                os._exit(status)
        os.close(up_write)
        os.close(down_read)
        self._pid = pid
        self._up = os.fdopen(up_read, "rb")
        self._down_end = down_write
        self._sending: threading.Thread | None = None
        # The child's CPU seconds (user and system), known once it has ended.
        self.cpu_seconds = 0.0

    def receive(self) -> Any:
        """Return the next value the child sends (waiting for it); raise ChildFailed when it failed or died."""
        try:
            ok, value = pickle.load(self._up)
        except (EOFError, pickle.UnpicklingError, OSError):
            status = self._wait()
            self._close()
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            raise ChildFailed(f"the child process of the matcher's {self.name} {how} before it sent a result")
        except BaseException:
            self.cancel()
            raise
        if not ok:
            self._wait()
            self._close()
            raise ChildFailed(f"the child process of the matcher's {self.name} failed:\n{value}")
        return value

    def send(self, value: Any) -> None:
        """Send the child a value (once), on a thread of its own: the caller goes on while the child reads it."""
        down_end, self._down_end = self._down_end, None

        def write() -> None:
            try:
                with os.fdopen(down_end, "wb") as stream:
                    pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
            except OSError:  # the child is gone: receive() says how
                pass

        self._sending = threading.Thread(target=write, name="forked-send", daemon=True)
        self._sending.start()

    def result(self) -> R:
        """Return the child's return value (waiting for it); raise ChildFailed when it failed or died."""
        value = self.receive()
        self._close()
        self._wait()
        return value

    def cancel(self) -> None:
        """End the child (the caller no longer wants its results)."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._close()
        self._wait()

    def _close(self) -> None:
        if self._down_end is not None:
            os.close(self._down_end)
            self._down_end = None
        if self._sending is not None:
            self._sending.join()
            self._sending = None
        if not self._up.closed:
            self._up.close()

    def _wait(self) -> int:
        pid, self._pid = self._pid, None
        if pid is None:
            return 0
        _pid, status, usage = os.wait4(pid, 0)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        return os.waitstatus_to_exitcode(status)


def start(function: Callable[[Link], R], *, name: str) -> Child[R]:
    """Run ``function(link)`` in a forked child; call ``result()`` on what is returned (or ``cancel()``)."""
    sys.stdout.flush()
    sys.stderr.flush()  # nothing buffered here is written twice by the child
    _release_free_memory()
    return Child(function, name)


def _release_free_memory() -> None:
    """Hand the free pages of this process's heap back to the system (glibc's malloc_trim) before a fork: the
    child's and this process's new arrays then land on fresh pages, not on inherited free ones that each write
    would copy (copy-on-write) and that both processes would hold."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _trim = False
    if _trim:
        _trim(0)


_trim = None


def cpu_seconds() -> float:
    """Return this process's CPU seconds so far (user and system; a child sends its own with a result)."""
    times = os.times()
    return times.user + times.system
