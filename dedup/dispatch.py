"""Send a Celery task by its registered name once the current transaction commits.

Services queue work through here instead of importing `dedup.tasks` (which imports the services): the
dependency runs one way, tasks -> services, and no module imports the other back. The tasks are registered in
every process by `DedupConfig.ready`, and the looked-up task object honours eager mode in tests.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)


def task_send(
    name: str, *, args: list, task_id: str | None = None, on_failure: Callable[[Exception], None] | None = None
) -> None:
    """Send task `name` with `args` after the commit; a broker that refuses it calls `on_failure(error)`."""
    transaction.on_commit(partial(task_send_now, name, args=args, task_id=task_id, on_failure=on_failure))


def task_send_now(
    name: str,
    *,
    args: list,
    task_id: str | None = None,
    on_failure: Callable[[Exception], None] | None = None,
    queue: str | None = None,
) -> None:
    """Send task `name` with `args` now (from a callback that runs after the commit, whose work is committed);
    `queue` overrides the task's route (CELERY_TASK_ROUTES)."""
    try:
        current_app.tasks[name].apply_async(args=args, task_id=task_id, **({"queue": queue} if queue else {}))
    except Exception as error:  # the broker unreachable, a serialisation error: the caller records it
        if current_app.conf.task_always_eager and not isinstance(error, BrokerError):
            raise  # eager (tests): nothing was published; the task itself ran and failed, which must surface
        if on_failure is None:
            # The change is committed already; failing the request now would only hide that. Work with no
            # job row of its own (an index backfill, a figures rebuild) is redone by the next scan or rebuild.
            logger.exception("Could not send the task %s %s; it is left to the next scan or rebuild", name, args)
            return
        on_failure(error)
