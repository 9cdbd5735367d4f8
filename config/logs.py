"""Structured logs for production: JSON lines, one per request and one per Celery task.

A line is one JSON object (`ts`, `level`, `logger`, `msg` and the event's fields), so a log shipper needs no
parsing rules. Requests log method, path, status, duration, the CPU time of the thread that served them (so a slow
answer shows whether it worked or waited: for a core, a lock, PostgreSQL), the number of SQL statements and the time
from sending each to having its answer back in Python (`db_ms`: PostgreSQL's work, the wait for the server's
core and, with threads, for the GIL once the answer is in; the commits are not statements and not in it) and user; tasks log name, task id, state, duration
and the ids they were given (`job_id` of a merge, `run_id` of a scan, `chunk_id` of a scan chunk), which tie a
line to the job a user sees in the admin.
"""
from __future__ import annotations

import inspect
import json
import logging
import time
from datetime import UTC, datetime

from celery import signals

request_logger = logging.getLogger("mergewise.request")
task_logger = logging.getLogger("mergewise.task")

# Attributes every LogRecord has; anything else was passed in `extra` and belongs to the event.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line with the fields given in `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class RequestLogMiddleware:
    """Log one line per request: what was asked, the answer, how long it took, who asked."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started, started_cpu = time.perf_counter(), time.thread_time()
        from django.db import connection

        timer = _StatementTimer()
        with connection.execute_wrapper(timer):
            response = self.get_response(request)
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "cpu_ms": round((time.thread_time() - started_cpu) * 1000, 1),
            "queries": timer.count,
            "db_ms": round(timer.seconds * 1000, 1),
        }
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            fields["user_id"] = user.pk
        token = getattr(request, "auth", None)  # an intake request's integration token
        if getattr(token, "pk", None) is not None:
            fields["token_id"] = token.pk
        match = getattr(request, "resolver_match", None)
        if match is not None:
            fields["view"] = match.view_name
            fields.update(_ids(match.kwargs))
        fields.update(_ids(request.GET))
        request_logger.info("request", extra=fields)
        return response


class _StatementTimer:
    """An execute wrapper (the default database's, for one request): counts the statements and adds up their time."""

    __slots__ = ("count", "seconds")

    def __init__(self):
        self.count, self.seconds = 0, 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


def _ids(values) -> dict:
    """The job, run and chunk ids among a URL's arguments or query."""
    return {name: values[name] for name in ("job_id", "job", "run_id", "chunk_id") if name in values}


# --- Celery tasks -----------------------------------------------------------------------------------------------

_started: dict[str, float] = {}


def _task_ids(task, args, kwargs) -> dict:
    """The arguments named *_id the task was called with (merge job, scan run, scan chunk)."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except (TypeError, ValueError):
        return {}
    return {name: value for name, value in bound.arguments.items() if name.endswith("_id")}


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, args=None, kwargs=None, **extra):
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, args=None, kwargs=None, state=None, **extra):
    started = _started.pop(task_id, None)
    fields = {"task": getattr(task, "name", str(task)), "task_id": task_id, "state": state}
    if started is not None:
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    fields.update(_task_ids(task, args, kwargs))
    task_logger.info("task", extra=fields)
