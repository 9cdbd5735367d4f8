"""Scan runs: start one (refused while another runs), plan its chunks, scan them, join them into the queue."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.functional import Promise

from dedup import registry
from dedup.dispatch import task_send, task_send_now
from dedup.engine import rules as dedup_rules
from dedup.engine import scan as dedup_scan
from dedup.engine import scan_scored
from dedup.engine.counts import REBUILD_TASK, counts_rebuild
from dedup.messages import Message, message_data, stored
from dedup.models import Rule
from dedup.models import Notification
from dedup.models.scan import DuplicateGroup, ScanChunk, ScanRun
from dedup.notifications import notification_send

from .auto_merge import groups_auto_merge
from .errors import ScanAlreadyRunning, ScanError
from .queue import groups_upsert, record_info, record_info_dump, record_info_load

logger = logging.getLogger(__name__)

# Records per chunk: 1,000,000 customers make 10 chunks, enough for a few workers to share evenly while each
# chunk's fixed costs (reading the "not a duplicate" pairs, planning) stay small. Settings may override it
# (DEDUP_SCAN_CHUNK_RECORDS).
# The registered names of the scan's Celery tasks (dedup/tasks.py); the periodic task and queued messages
# refer to them, so they never change.
SCHEDULED_SCAN_TASK = "dedup.scan_scheduled"
PLAN_TASK = "dedup.scan_plan"

SCAN_CHUNK_RECORDS = 100_000
# More chunks than this only adds overhead: no deployment runs that many scan workers.
SCAN_MAX_CHUNKS = 64
# A running scan with no chunk finishing for this long is taken as abandoned (its workers died).
SCAN_ABANDONED_AFTER = timedelta(hours=3)
CHUNK_TASK = "dedup.scan_chunk"
# A chunk "running" for longer than this lost its worker (a 100,000-record chunk takes a minute or two): the
# sweeper sends it again, up to SCAN_CHUNK_MAX_ATTEMPTS attempts in all, then fails it and its run. A chunk
# still at work when sent again is harmless: a chunk's result replaces, never adds. Settings may override it
# in seconds (DEDUP_SCAN_CHUNK_STALLED_AFTER).
SCAN_CHUNK_STALLED_AFTER = timedelta(minutes=15)
SCAN_CHUNK_MAX_ATTEMPTS = 3
# A run with no chunk planned this long after it started lost its plan message or worker.
SCAN_PLAN_STALLED_AFTER = timedelta(minutes=15)

# Stored texts (message ids, shown in the reader's language).
RESOLVED_NO_RULE = gettext_lazy("No active rule finds these records any more.")
ERROR_REASON = gettext_lazy("It stopped on an error: %(error)s")
SCAN_NOT_SENT_REASON = gettext_lazy(
    "The background workers could not be reached (the task queue is down), so the scan did not start. "
    "Try again in a few minutes."
)


def _chunk_records() -> int:
    return max(1, int(getattr(settings, "DEDUP_SCAN_CHUNK_RECORDS", SCAN_CHUNK_RECORDS)))


# --- Selectors ------------------------------------------------------------------------------------------------


def scan_entities() -> list[str]:
    """Return the keys of the registered entities that have at least one active rule (one query)."""
    with_rules = set(Rule.objects.filter(active=True).values_list("entity", flat=True).distinct())
    return [spec.key for spec in registry.all_specs() if spec.key in with_rules]


def scan_running() -> ScanRun | None:
    return ScanRun.objects.filter(status=ScanRun.Status.RUNNING).first()


def scan_progress(run: ScanRun) -> tuple[int, int]:
    """Return (chunks done, chunks in all) of a run (one query)."""
    counts = run.chunks.aggregate(
        total=models.Count("pk"), done=models.Count("pk", filter=models.Q(status=ScanChunk.Status.DONE))
    )
    return counts["done"] or 0, counts["total"] or 0


def scan_groups(*, run: ScanRun, entity: str) -> list[dedup_scan.Group]:
    """Return the groups one entity's chunks of a run found (the rule chunks' and the scored pass's), joined
    across chunks and split where a veto or "not a duplicate" forbids a pair (what the queue and the command
    get)."""
    return scan_scored.groups_obeying(entity, dedup_scan.merge_groups(_chunk_groups(run, entity, "groups")))


def _chunk_records_info(run: ScanRun, entity: str) -> dict:
    info = {}
    results = ScanChunk.objects.filter(run=run, entity=entity).values_list("result", flat=True)
    for result in results.iterator(chunk_size=8):
        info.update(record_info_load((result or {}).get("records", [])))
    return info


def _chunk_groups(run: ScanRun, entity: str, part: str) -> Iterable[dedup_scan.Group]:
    results = ScanChunk.objects.filter(run=run, entity=entity).values_list("result", flat=True)
    for result in results.iterator(chunk_size=8):
        for ids, reasons, rule_ids in (result or {}).get(part, []):
            yield dedup_scan.Group(list(ids), list(reasons), list(rule_ids))



# --- Starting a run -------------------------------------------------------------------------------------------


def scan_start(
    *,
    trigger: str = ScanRun.Trigger.SCHEDULE,
    user=None,
    entities: Sequence[str] | None = None,
    dispatch: bool = True,
) -> ScanRun:
    """Start a scan of the given entities (default: every entity with active rules); raise ScanAlreadyRunning.

    The run row is committed at once (so a second start is refused at once, and the admin shows "planning"),
    then a task plans its chunks (`scan_plan`, seconds on a large base) and sends them. With `dispatch=False`
    nothing is sent: the chunks are planned here and the caller runs them itself (`scan_execute`).
    """
    scan_all = entities is None
    if scan_all:
        entities = scan_entities()
    else:
        entities = list(dict.fromkeys(entities))
        unknown = [key for key in entities if key not in {spec.key for spec in registry.all_specs()}]
        if unknown:
            raise ScanError(_("Unknown entity: %(keys)s.") % {"keys": ", ".join(unknown)})
    if trigger not in ScanRun.Trigger.values:
        raise ScanError(_("Unknown way to start a scan: %(trigger)s.") % {"trigger": trigger})

    with transaction.atomic():
        _fail_abandoned()
        try:
            with transaction.atomic():
                run = ScanRun.objects.create(
                    trigger=trigger,
                    requested_by=user if getattr(user, "pk", None) else None,
                    entities=list(entities),
                )
        except IntegrityError:
            raise ScanAlreadyRunning(scan_running()) from None
        if scan_all:
            _close_unscanned(entities)
        if not entities:
            # Nothing to scan (no active rules): the run is done at once, and says so.
            run.status = ScanRun.Status.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "finished_at"])
        elif dispatch:
            task_send(PLAN_TASK, args=[run.pk], on_failure=partial(_run_not_sent, run.pk))
    if not dispatch and run.status == ScanRun.Status.RUNNING:
        scan_plan(run_id=run.pk)
        run.refresh_from_db()
    return run


def scan_plan(*, run_id: int) -> list[int]:
    """Split a run's entities into chunks by key ranges and return the ids of the chunks still to scan.

    Idempotent: a run planned already (a redelivered task) is not planned again; its unfinished chunks are
    returned to be sent again, which the chunks themselves make harmless.
    """
    with transaction.atomic():
        run = ScanRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != ScanRun.Status.RUNNING:
            return []
        if not run.chunks.exists():
            chunks = []
            stats = dict(run.stats or {})
            for key in run.entities:
                started = time.monotonic()
                spec = registry.get(key)
                records = dedup_scan.records_count(spec)
                count = min(SCAN_MAX_CHUNKS, max(1, math.ceil(records / _chunk_records())))
                ranges = dedup_scan.plan_chunks(key, count)
                if scan_scored.scored_entity(key, records):
                    # The scored pass: one extra chunk reading every record (dedup/engine/scan_scored.py).
                    ranges = [*ranges, dict(scan_scored.SCORED_RANGE)]
                stats[key] = {
                    "records": records,
                    "chunks": len(ranges),
                    "plan_seconds": round(time.monotonic() - started, 2),
                }
                chunks += [ScanChunk(run=run, entity=key, index=i, key_range=r) for i, r in enumerate(ranges)]
            ScanChunk.objects.bulk_create(chunks)
            run.stats = stats
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["stats", "heartbeat_at"])
        return list(run.chunks.exclude(status=ScanChunk.Status.DONE).values_list("pk", flat=True))


def _close_unscanned(scanned: Sequence[str]) -> None:
    """Close the open groups of entities no active rule scans any more: nothing would ever update them."""
    DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN).exclude(entity__in=list(scanned)).update(
        status=DuplicateGroup.Status.CLOSED,
        resolution=str(RESOLVED_NO_RULE),
        resolution_data=stored(Message.of(RESOLVED_NO_RULE)),
        resolved_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _fail_abandoned() -> None:
    limit = timezone.now() - SCAN_ABANDONED_AFTER
    stuck = ScanRun.objects.select_for_update().filter(status=ScanRun.Status.RUNNING, heartbeat_at__lt=limit).first()
    if stuck is not None:
        _run_fail(
            stuck,
            Message.of(
                gettext_lazy("Abandoned: no part of the scan made progress for %(hours)s hours (its workers stopped)."),
                hours=int(SCAN_ABANDONED_AFTER.total_seconds() // 3600),
            ),
        )


def _run_not_sent(run_id: int, error: Exception) -> None:
    """The scan's plan message could not be published: the run fails at once (so it blocks no later scan)."""
    logger.warning("Scan run %s could not be sent to the workers: %s", run_id, error)
    scan_run_fail(run_id=run_id, reason=SCAN_NOT_SENT_REASON)


def scan_request(*, trigger: str, user=None) -> ScanRun | None:
    """Start a scan on the workers for the schedule or the admin; return None (and log) if one is running."""
    try:
        return scan_start(trigger=trigger, user=user)
    except ScanAlreadyRunning as error:
        logger.info("%s", error)
        return None


def scan_execute(
    *,
    entities: Sequence[str] | None = None,
    trigger: str = ScanRun.Trigger.COMMAND,
    user=None,
    progress: Callable[[ScanChunk], None] | None = None,
) -> ScanRun:
    """Run a whole scan in this process (the command line): the same run, plan, chunks and join as the workers'."""
    run = scan_start(trigger=trigger, user=user, entities=entities, dispatch=False)
    for chunk_id in run.chunks.order_by("entity", "index").values_list("pk", flat=True):
        try:
            scan_chunk_process(chunk_id=chunk_id)
        except Exception as error:
            scan_chunk_fail(chunk_id=chunk_id, reason=error)
            raise
        if progress is not None:
            progress(ScanChunk.objects.get(pk=chunk_id))
    scan_join(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- Chunks ---------------------------------------------------------------------------------------------------


def scan_chunk_process(*, chunk_id: int) -> tuple[int | None, bool]:
    """Scan one chunk and store its groups; return (run id, whether every chunk of the run is now done).

    Idempotent: a chunk already done is not scanned again (its delivery only reports whether the join is due),
    and a chunk scanned again after a crash replaces its stored result.
    """
    chunk = ScanChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None or chunk.run.status != ScanRun.Status.RUNNING:
        return (chunk.run_id if chunk else None), False
    if chunk.status == ScanChunk.Status.DONE:
        return chunk.run_id, _all_chunks_done(chunk.run_id)

    ScanChunk.objects.filter(pk=chunk.pk).update(
        status=ScanChunk.Status.RUNNING, attempts=models.F("attempts") + 1, started_at=timezone.now(), error=""
    )
    started = time.monotonic()
    if scan_scored.is_scored_range(chunk.key_range):
        # The scored pass: groups by the learned model (learned first when due). Never merged automatically.
        found = scan_scored.scored_groups(chunk.entity)
        trusted = []
    else:
        found = dedup_scan.find_groups(chunk.entity, chunk=chunk.key_range)
        trusted = _trusted_rules(chunk.entity)
    groups = [[group.ids, [stored(reason) for reason in group.reasons], group.rule_ids] for group in found]
    # The groups trusted rules (auto-merge on) find by themselves: only those are merged without a manager.
    trusted_groups = (
        [
            [group.ids, [stored(reason) for reason in group.reasons], group.rule_ids]
            for group in dedup_scan.find_groups(chunk.entity, chunk=chunk.key_range, rules_to_use=trusted)
        ]
        if trusted
        else []
    )
    # The managers and last changes of the records found, read here so the workers share it, not the join.
    records = record_info_dump(record_info(registry.get(chunk.entity), {pk for ids, *_ in groups for pk in ids}))
    seconds = round(time.monotonic() - started, 3)

    with transaction.atomic():
        # Locking the run serialises the chunks' endings, so exactly the last one sees nothing left to do.
        run = ScanRun.objects.select_for_update().get(pk=chunk.run_id)
        current = ScanChunk.objects.select_for_update().get(pk=chunk.pk)
        if run.status != ScanRun.Status.RUNNING:
            return run.pk, False
        if current.status != ScanChunk.Status.DONE:
            current.result = {"groups": groups, "trusted": trusted_groups, "records": records}
            current.groups_found = len(groups)
            current.seconds = seconds
            current.status = ScanChunk.Status.DONE
            current.finished_at = timezone.now()
            current.error, current.error_data = "", None
            current.save(
                update_fields=["result", "groups_found", "seconds", "status", "finished_at", "error", "error_data"]
            )
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["heartbeat_at"])
        return run.pk, _all_chunks_done(run.pk)


def _all_chunks_done(run_id: int) -> bool:
    return not ScanChunk.objects.filter(run_id=run_id).exclude(status=ScanChunk.Status.DONE).exists()


def _trusted_rules(entity: str) -> list:
    return [rule for rule in dedup_rules.active_rules(entity) if rule.rule.auto_merge]


def _reason(reason) -> Message | str:
    """Return why a scan or a chunk failed as a stored text: a message as it is, a lazy text as a message, an
    exception (a bug, a lost database) as a message quoting its technical text; plain text as it is."""
    if isinstance(reason, Promise):
        return Message.of(reason)
    if isinstance(reason, BaseException):
        return Message.of(ERROR_REASON, error=(str(reason) or reason.__class__.__name__)[:2000])
    return reason


def scan_chunk_retrying(*, chunk_id: int, reason) -> None:
    """Note on a chunk why its attempt failed (a message, an exception or text); its task will try again."""
    reason = _reason(reason)
    ScanChunk.objects.filter(pk=chunk_id).update(
        status=ScanChunk.Status.PENDING, error=str(reason)[:2000], error_data=message_data(reason)
    )


@transaction.atomic
def scan_chunk_fail(*, chunk_id: int, reason) -> None:
    """Give up on a chunk after its retries: the chunk and its run fail with the reason."""
    chunk = ScanChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None:
        return
    reason = _reason(reason)
    run = ScanRun.objects.select_for_update().get(pk=chunk.run_id)
    ScanChunk.objects.filter(pk=chunk_id).update(
        status=ScanChunk.Status.FAILED, error=str(reason)[:2000], error_data=message_data(reason),
        finished_at=timezone.now(),
    )
    if run.status == ScanRun.Status.RUNNING:
        _run_fail(
            run,
            Message.of(
                gettext_lazy("Part %(index)s of %(entity)s failed: %(reason)s"),
                index=chunk.index + 1,
                entity=_entity_word(chunk.entity),
                reason=reason,
            ),
        )


def _entity_word(key: str):
    """Return an entity's plural name (lazy, so it is stored as a message id), or its key if it is gone."""
    try:
        return registry.get(key).model._meta.verbose_name_plural
    except (KeyError, LookupError, AttributeError):
        return key


@transaction.atomic
def scan_run_fail(*, run_id: int, reason) -> None:
    """Fail a running scan (its join gave up); the queue keeps what earlier scans found."""
    run = ScanRun.objects.select_for_update().filter(pk=run_id).first()
    if run is not None and run.status == ScanRun.Status.RUNNING:
        _run_fail(run, reason)


def _run_fail(run: ScanRun, reason) -> None:
    reason = _reason(reason)
    run.status = ScanRun.Status.FAILED
    run.failure_reason = str(reason)[:4000]
    run.failure_data = message_data(reason)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "failure_reason", "failure_data", "finished_at"])
    if run.requested_by_id is not None:
        notification_send(
            user=run.requested_by,
            level=Notification.Level.ERROR,
            message=Message.of(gettext_lazy("Scan #%(id)s failed: %(reason)s"), id=run.pk, reason=reason),
            url=reverse("admin:dedup_scanrun_change", args=[run.pk]),
        )


# --- Sweeper --------------------------------------------------------------------------------------------------


def _setting_delta(name: str, default: timedelta) -> timedelta:
    seconds = getattr(settings, name, None)
    return timedelta(seconds=float(seconds)) if seconds is not None else default


def scan_sweep() -> dict[str, int]:
    """Send again the chunks whose worker died, fail those out of attempts and runs never planned.

    Return {"resent": n, "failed": n}. Called every minute by the sweeper task.
    """
    now = timezone.now()
    chunk_limit = now - _setting_delta("DEDUP_SCAN_CHUNK_STALLED_AFTER", SCAN_CHUNK_STALLED_AFTER)
    resent = failed = 0
    stalled = ScanChunk.objects.filter(
        status=ScanChunk.Status.RUNNING, started_at__lt=chunk_limit, run__status=ScanRun.Status.RUNNING
    ).order_by("pk")
    for chunk in stalled:
        reason = Message.of(
            gettext_lazy("Its worker stopped before it finished (attempt %(attempt)s)."), attempt=chunk.attempts
        )
        if chunk.attempts >= SCAN_CHUNK_MAX_ATTEMPTS:
            scan_chunk_fail(chunk_id=chunk.pk, reason=reason)
            failed += 1
            continue
        with transaction.atomic():
            moved = ScanChunk.objects.filter(
                pk=chunk.pk, status=ScanChunk.Status.RUNNING, started_at__lt=chunk_limit
            ).update(status=ScanChunk.Status.PENDING, error=str(reason), error_data=message_data(reason))
            if moved:
                task_send(CHUNK_TASK, args=[chunk.pk], on_failure=partial(_chunk_not_sent, chunk.pk))
                resent += 1
    plan_limit = now - _setting_delta("DEDUP_SCAN_PLAN_STALLED_AFTER", SCAN_PLAN_STALLED_AFTER)
    unplanned = ScanRun.objects.filter(status=ScanRun.Status.RUNNING, started_at__lt=plan_limit, chunks__isnull=True)
    for run_id in unplanned.values_list("pk", flat=True):
        scan_run_fail(
            run_id=run_id, reason=gettext_lazy("Its chunks were never planned (the planning worker stopped).")
        )
        failed += 1
    return {"resent": resent, "failed": failed}


def _chunk_not_sent(chunk_id: int, error: Exception) -> None:
    logger.warning("Scan chunk %s could not be sent again: %s", chunk_id, error)
    scan_chunk_fail(chunk_id=chunk_id, reason=SCAN_NOT_SENT_REASON)


# --- Joining --------------------------------------------------------------------------------------------------


def _figures_rebuild_here(entity: str, error: Exception) -> None:
    logger.warning("The figures' rebuild of %s could not be queued (%s); rebuilt by the join", entity, error)
    counts_rebuild(entity=entity)


def scan_join(*, run_id: int) -> ScanRun | None:
    """Join a run whose chunks are all done: fill the review queue, close stale groups, auto-merge, finish.

    Idempotent: a run that is not running (already joined, failed) or still has chunks to do is left alone.
    """
    with transaction.atomic():
        run = ScanRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != ScanRun.Status.RUNNING or not _all_chunks_done(run.pk):
            return run
        stats = dict(run.stats or {})
        for entity in run.entities:
            found = scan_groups(run=run, entity=entity)
            outcome = groups_upsert(entity=entity, found=found, run=run, info=_chunk_records_info(run, entity))
            chunk_seconds = run.chunks.filter(entity=entity).aggregate(total=models.Sum("seconds"))["total"] or 0
            stats[entity] = {
                **stats.get(entity, {}),
                "groups": len(found),
                "new": outcome.created,
                "updated": outcome.updated,
                "closed": outcome.closed,
                "seconds": round(chunk_seconds, 2),
            }
        run.stats = stats
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["stats", "heartbeat_at"])

    # Each automatic merge is its own transaction: one that is refused (a record changed meanwhile) leaves its
    # group in the queue and does not undo the others.
    for entity in run.entities:
        trusted = scan_scored.groups_obeying(entity, dedup_scan.merge_groups(_chunk_groups(run, entity, "trusted")))
        merged = groups_auto_merge(entity=entity, trusted=trusted)
        stats[entity]["auto_merged"] = merged
        # The scan read every record: the stored duplicate figures (list counts, the filter) are rebuilt too, by a
        # task of their own on the bulk queue (80 s at 1,000,000 customers, most of the join's time): the run is
        # done and its queue filled without waiting for them. A broker that refuses the task: rebuilt here.
        task_send_now(REBUILD_TASK, args=[entity], on_failure=partial(_figures_rebuild_here, entity))

    with transaction.atomic():
        run = ScanRun.objects.select_for_update().get(pk=run_id)
        if run.status == ScanRun.Status.RUNNING:
            run.stats = stats
            run.status = ScanRun.Status.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["stats", "status", "finished_at"])
    return run
