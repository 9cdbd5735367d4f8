"""Send the stored figures' refresh task at most once per entity and queue while a message of it waits.

Every commit that changes records marks them as waiting for their figures (FiguresPending) and asks for the
refresh task, which takes every record waiting. Sending a message on each commit piled them up under load: at
1,000,000 customers, 1,106 refresh messages were still queued at the end of a 5-minute run, each of them an empty
task (an earlier one had taken its records), each costing a worker a wake-up, its queries and a log
line (bench/README.md, 2026-12-06). So a message is sent only when none of the entity's waits on that queue
(FiguresRefreshQueued, one row per entity and queue): the task deletes the row as it starts and then reads what is
waiting, so a change committed before that is taken by it, and one committed after sends a message of its own.
At most one message waits per queue, however many requests arrive while it does, and it refreshes their records
together.

A message the broker loses (a purge, a Redis flushed) would leave its row behind and silence the entity: a row
older than LOST_AFTER counts as lost, and the next change, or the sweeper of stalled jobs (every minute), sends
again. A second message is harmless: it finds the records taken.

A commit's records are marked and the waiting message looked for in one statement where the database has
one-statement writes (PostgreSQL), one round trip after every save and intake post instead of four (BEGIN, the
upsert, COMMIT, the lookup; bench/README.md 2026-12-06, branch wt-intake). The lookup locks the message's row
(FOR SHARE) until the marks commit, so a task starting meanwhile deletes the row only after that and then reads
the marks: a record is never marked behind the back of a task that has already looked.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import Min
from django.utils import timezone

from dedup import db
from dedup.models import FiguresPending, FiguresRefreshQueued

logger = logging.getLogger(__name__)

# The registered name of the refresh task (dedup/tasks.py), on the "figures" queue (config/settings/base.py).
REFRESH_TASK = "dedup.counts_refresh"
# Batches of REFRESH_BATCH records one refresh task takes on the figures queue; what is left (an import, a burst)
# goes on in a task on the bulk queue, so the figures of the saves behind it wait for a second at most.
INTERACTIVE_DRAIN_BATCHES = 3
# Longer than a refresh message waits on a busy queue (the figures' worker may wait for the scan's rebuild of the
# figures, a minute or two, and the bulk queue's worker may be in a scan chunk as long), short enough that a lost one
# is noticed soon.
LOST_AFTER = timedelta(minutes=5)


def refresh_queue(*, bulk: bool) -> str:
    """Return the queue a refresh goes to: the task's route (figures), or the bulk queue for a large one."""
    if not bulk:
        route = settings.CELERY_TASK_ROUTES.get(REFRESH_TASK, {})
        if route.get("queue"):
            return route["queue"]
    return settings.CELERY_TASK_DEFAULT_QUEUE


def _mark_and_look(entity: str, queue: str, waiting: Sequence[int], *, now: datetime) -> bool:
    """Mark these records as waiting for their figures (FiguresPending) and return whether a message of the
    entity that is not lost waits on the queue."""
    lost = now - LOST_AFTER
    connection = connections[router.db_for_write(FiguresPending)]
    if not waiting or not db.one_statement_writes(connection):
        if waiting:
            FiguresPending.objects.bulk_create(
                [FiguresPending(entity=entity, record_id=pk, changed_at=now) for pk in waiting],
                update_conflicts=True, unique_fields=["entity", "record_id"], update_fields=["changed_at"],
            )
        return FiguresRefreshQueued.objects.filter(entity=entity, queue=queue, sent_at__gt=lost).exists()

    def column(model, name: str) -> str:
        return db.column(connection, model, name)

    pending, queued = FiguresPending, FiguresRefreshQueued
    # One statement, atomic on its own (autocommit: the caller runs after its commit). FOR SHARE: a task taking
    # the message (refresh_taken deletes the row) waits until the marks are committed, then reads them.
    sql = (
        f"WITH marked AS (INSERT INTO {db.table(connection, pending)} "
        f"({column(pending, 'entity')}, {column(pending, 'record_id')}, {column(pending, 'changed_at')}) "
        f"SELECT %s, UNNEST(%s::bigint[]), %s "
        f"ON CONFLICT ({column(pending, 'entity')}, {column(pending, 'record_id')}) "
        f"DO UPDATE SET {column(pending, 'changed_at')} = EXCLUDED.{column(pending, 'changed_at')}) "
        f"SELECT 1 FROM {db.table(connection, queued)} WHERE {column(queued, 'entity')} = %s "
        f"AND {column(queued, 'queue')} = %s AND {column(queued, 'sent_at')} > %s FOR SHARE"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [entity, list(waiting), now, entity, queue, lost])
        return cursor.fetchone() is not None


def _claim(entity: str, queue: str, waiting: Sequence[int] = ()) -> bool:
    """Mark the records as waiting, then record that a message for the entity is about to wait on the queue;
    False when one waits there already."""
    now = timezone.now()
    if _mark_and_look(entity, queue, waiting, now=now):  # the common case under load: nothing to send
        return False
    return _claim_message(entity, queue, now=now)


def _claim_message(entity: str, queue: str, *, now: datetime) -> bool:
    """Record that a message for the entity is about to wait on the queue; False when one waits there already."""
    lost = now - LOST_AFTER
    waiting_rows = FiguresRefreshQueued.objects.filter(entity=entity, queue=queue)
    # One of several requests finding the row lost takes it over (the others' UPDATE then matches no row).
    if waiting_rows.filter(sent_at__lte=lost).update(sent_at=now):
        return True
    try:
        with transaction.atomic():
            FiguresRefreshQueued.objects.create(entity=entity, queue=queue, sent_at=now)
    except IntegrityError:  # another request sent it a moment ago
        return False
    return True


def refresh_send(
    *,
    entity: str,
    bulk: bool,
    on_failure: Callable[[Exception | None], None] | None = None,
    waiting: Sequence[int] = (),
) -> bool:
    """Mark the ``waiting`` records (ids) as waiting for their figures and send the refresh task of the entity's
    waiting records, to the figures queue (INTERACTIVE_DRAIN_BATCHES batches, then on to the bulk queue) or
    with ``bulk`` to the bulk queue (all of them), unless a message of it already waits there. Call it outside a
    transaction, once the changes are committed. A broker that refuses the message calls ``on_failure`` (default:
    log it) once the mark is withdrawn. Return whether a message was sent."""
    queue = refresh_queue(bulk=bulk)
    try:
        if not _claim(entity, queue, waiting):
            return False
    except DatabaseError:  # a message too many is harmless, none at all is not
        logger.exception("Could not mark or check the queued refresh of %s; sending one", entity)
    _send(entity, queue, bulk=bulk, on_failure=on_failure)
    return True


def _send(entity: str, queue: str, *, bulk: bool, on_failure: Callable[[Exception | None], None] | None) -> None:
    """Send the refresh task of the entity's waiting records to the queue (its row claimed)."""
    from dedup.dispatch import task_send_now

    def failed(error: Exception | None = None) -> None:
        refresh_taken(entity=entity, queue=queue)
        if on_failure is None:
            logger.error("Could not send the refresh of %s; the sweeper tries again: %s", entity, error)
        else:
            on_failure(error)

    batches = None if bulk else INTERACTIVE_DRAIN_BATCHES
    task_send_now(REFRESH_TASK, args=[entity, batches, queue], queue=queue, on_failure=failed)


def refresh_mark_in_transaction(
    *,
    entity: str,
    waiting: Sequence[int],
    bulk: bool = False,
    on_failure: Callable[[Exception | None], None] | None = None,
) -> None:
    """Mark the ``waiting`` records (ids) as waiting for their figures inside the current transaction, and send the
    refresh task once it commits unless a message of the entity waited (refresh_send's work, its mark committed
    with the change instead of after it).

    For a request whose last write is known (the intake): refresh_send after the commit is a second transaction,
    and on PostgreSQL every commit waits for the WAL's flush to the disk (4 ms here, 10 to 15 ms at p95 while a
    scan writes; bench/README.md 2026-12-06): one flush per request instead of two, and the marks can no longer
    be lost between the two commits. The look locks the waiting message's row (FOR SHARE) until the commit, so a
    task taking that message reads these marks (as with refresh_send). An error rolls the request back with its
    change: nothing is committed without its mark.
    """
    queue = refresh_queue(bulk=bulk)
    now = timezone.now()
    if _mark_and_look(entity, queue, waiting, now=now):
        return

    def send() -> None:
        try:
            if not _claim_message(entity, queue, now=timezone.now()):
                return
        except DatabaseError:  # a message too many is harmless, none at all is not
            logger.exception("Could not check the queued refresh of %s; sending one", entity)
        _send(entity, queue, bulk=bulk, on_failure=on_failure)

    transaction.on_commit(send, using=router.db_for_write(FiguresPending))


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
