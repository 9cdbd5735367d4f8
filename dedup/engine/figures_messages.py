"""Send the stored figures' refresh task at most once per entity and queue while a message of it waits.

Every commit that changes records marks them as waiting for their figures (FiguresPending) and asks for the
refresh task, which takes every record waiting. Sending a message on each commit piled them up under load: at
1,000,000 customers, 1,106 refresh messages were still queued at the end of a 5-minute run, each of them an empty
task (an earlier one had taken its records), each costing the interactive worker a wake-up, its queries and a log
line (bench/README.md, 2026-12-06). So a message is sent only when none of the entity's waits on that queue
(FiguresRefreshQueued, one row per entity and queue): the task deletes the row as it starts and then reads what is
waiting, so a change committed before that is taken by it, and one committed after sends a message of its own.
At most one message waits per queue, however many requests arrive while it does, and it refreshes their records
together.

A message the broker loses (a purge, a Redis flushed) would leave its row behind and silence the entity: a row
older than LOST_AFTER counts as lost, and the next change, or the sweeper of stalled jobs (every minute), sends
again. A second message is harmless: it finds the records taken.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from dedup.models import FiguresPending, FiguresRefreshQueued

logger = logging.getLogger(__name__)

# The registered name of the refresh task (dedup/tasks.py), on the "interactive" queue (config/settings/base.py).
REFRESH_TASK = "dedup.counts_refresh"
# Batches of REFRESH_BATCH records one refresh task takes on the interactive queue; what is left (an import, a
# burst) goes on in a task on the bulk queue, so the merges behind it wait for a second at most.
INTERACTIVE_DRAIN_BATCHES = 3
# Longer than a refresh message waits on a busy queue (it has the lowest priority of the interactive queue, and the
# bulk queue's worker may be in a scan chunk of a minute or two), short enough that a lost one is noticed soon.
LOST_AFTER = timedelta(minutes=5)


def refresh_queue(*, bulk: bool) -> str:
    """Return the queue a refresh goes to: the task's route (interactive), or the bulk queue for a large one."""
    if not bulk:
        route = settings.CELERY_TASK_ROUTES.get(REFRESH_TASK, {})
        if route.get("queue"):
            return route["queue"]
    return settings.CELERY_TASK_DEFAULT_QUEUE


def _claim(entity: str, queue: str) -> bool:
    """Record that a message for the entity is about to wait on the queue; False when one waits there already."""
    now = timezone.now()
    lost = now - LOST_AFTER
    waiting = FiguresRefreshQueued.objects.filter(entity=entity, queue=queue)
    if waiting.filter(sent_at__gt=lost).exists():  # the common case under load: one query, nothing sent
        return False
    # One of several requests finding the row lost takes it over (the others' UPDATE then matches no row).
    if waiting.filter(sent_at__lte=lost).update(sent_at=now):
        return True
    try:
        with transaction.atomic():
            FiguresRefreshQueued.objects.create(entity=entity, queue=queue, sent_at=now)
    except IntegrityError:  # another request sent it a moment ago
        return False
    return True


def refresh_send(*, entity: str, bulk: bool, on_failure: Callable[[Exception | None], None] | None = None) -> bool:
    """Send the refresh task of the entity's waiting records, to the interactive queue (INTERACTIVE_DRAIN_BATCHES
    batches, then on to the bulk queue) or with ``bulk`` to the bulk queue (all of them), unless a message of it
    already waits there. Call it outside a transaction, once the records are marked. A broker that refuses the
    message calls ``on_failure`` (default: log it) once the mark is withdrawn. Return whether a message was sent."""
    from dedup.dispatch import task_send_now

    queue = refresh_queue(bulk=bulk)
    try:
        if not _claim(entity, queue):
            return False
    except DatabaseError:  # a message too many is harmless, none at all is not
        logger.exception("Could not check the queued refresh of %s; sending one", entity)

    def failed(error: Exception | None = None) -> None:
        refresh_taken(entity=entity, queue=queue)
        if on_failure is None:
            logger.error("Could not send the refresh of %s; the sweeper tries again: %s", entity, error)
        else:
            on_failure(error)

    batches = None if bulk else INTERACTIVE_DRAIN_BATCHES
    task_send_now(REFRESH_TASK, args=[entity, batches, queue], queue=queue, on_failure=failed)
    return True


def refresh_taken(*, entity: str, queue: str | None) -> None:
    """Mark the entity's message on the queue as taken (the task starting): the next change sends again."""
    if queue:
        FiguresRefreshQueued.objects.filter(entity=entity, queue=queue).delete()


def refresh_resend_lost() -> list[str]:
    """Send the refresh again for the entities whose records have waited longer than LOST_AFTER with no message
    that is not itself lost (the sweeper, every minute); return those entities."""
    overdue = (
        FiguresPending.objects.values("entity")
        .annotate(oldest=Min("changed_at"))
        .filter(oldest__lt=timezone.now() - LOST_AFTER)
        .values_list("entity", flat=True)
    )
    return [entity for entity in overdue if refresh_send(entity=entity, bulk=False)]
