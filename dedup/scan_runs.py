"""Services of the automatic scan: start a run, scan its chunks, join them into the review queue, auto-merge.

The scheduled task, the admin's "Run scan now" and `manage.py dedup_scan` all go through `scan_start`,
`scan_chunk_process` and `scan_join`; only who runs the chunks differs (Celery workers, or the calling process).

How the pieces fit, and why:
- A run is one row with status "running"; a unique partial index allows one such row, so a second start is
  refused by the database itself, whichever process tries it. A run whose chunks stopped making progress for
  SCAN_ABANDONED_AFTER (its workers died) is failed by the next start instead of blocking scans forever.
- Each entity is split into key ranges (`dedup.scan.plan_chunks`); every chunk is a row and a Celery task.
  A chunk's result (its groups) is written to its row as a whole, so a retried chunk replaces its result
  rather than adding a second copy.
- Joining goes through the database, not a Celery chord: the transaction that marks the last chunk done sees
  that no chunk is left (the run row is locked while counting) and the task then sends the join. A chord
  needs its result backend to survive worker deaths and counts each retry; counting rows does not, and a chunk
  message redelivered after its worker died re-sends the join if it is still due. The join is idempotent.
- The join unites the chunks' groups (a record can be in blocks of several chunks) and upserts the queue by a
  stable signature (sha1 of the sorted record ids): the same records found again touch the same open group;
  a group whose records changed is updated in place; open groups not found again are closed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup import registry
from dedup import rules as dedup_rules
from dedup import scan as dedup_scan
from dedup.merge import MergeError, merge_job_create, merge_job_run, record_admin_url
from dedup.merge.fields import MERGED_INTO_FIELD, record_label
from dedup.models import MergeJob, MergeJobRecord, Notification, Rule
from dedup.models.scan import DuplicateGroup, DuplicateGroupMember, ScanChunk, ScanRun
from dedup.notifications import notification_send
from dedup.registry import EntitySpec
from dedup.services import not_duplicate_mark
from dedup.signals import records_bulk_saved

logger = logging.getLogger(__name__)

# Records per chunk: 1,000,000 customers make 10 chunks, enough for a few workers to share evenly while each
# chunk's fixed costs (reading the "not a duplicate" pairs, planning) stay small. Settings may override it.
SCAN_CHUNK_RECORDS = 100_000
# More chunks than this only adds overhead: no deployment runs that many scan workers.
SCAN_MAX_CHUNKS = 64
# A running scan with no chunk finishing for this long is taken as abandoned (its workers died).
SCAN_ABANDONED_AFTER = timedelta(hours=3)
# Rows per query when reading records and writing group members; below every database's parameter limit.
DB_BATCH = 2000


class ScanError(Exception):
    """A scan could not start or a queue action could not be done; the message says why, for the user."""


class ScanAlreadyRunning(ScanError):
    def __init__(self, run: ScanRun | None):
        self.run = run
        if run is not None:
            message = _("A scan is already running (#%(id)s, started %(started)s); it was not started twice.") % {
                "id": run.pk,
                "started": timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M"),
            }
        else:
            message = _("A scan is already running; it was not started twice.")
        super().__init__(message)


@dataclass
class FoundGroup:
    ids: list[int]
    reasons: list[str] = field(default_factory=list)
    rule_ids: list[int] = field(default_factory=list)

    @property
    def signature(self) -> str:
        return group_signature(self.ids)


def group_signature(ids: Iterable[int]) -> str:
    """Return the stable signature of a set of records: the same records always give the same signature."""
    return hashlib.sha1(",".join(str(pk) for pk in sorted(set(ids))).encode()).hexdigest()


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
    """Return the groups one entity's chunks of a run found, joined across chunks (what the command prints)."""
    return dedup_scan.merge_groups(_chunk_groups(run, entity, "groups"))


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
            transaction.on_commit(partial(_dispatch_plan, run.pk))
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
        resolution=_("No active rule finds these records any more."),
        resolved_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _fail_abandoned() -> None:
    limit = timezone.now() - SCAN_ABANDONED_AFTER
    stuck = ScanRun.objects.select_for_update().filter(status=ScanRun.Status.RUNNING, heartbeat_at__lt=limit).first()
    if stuck is not None:
        _run_fail(
            stuck,
            _("Abandoned: no part of the scan made progress for %(hours)s hours (its workers stopped).")
            % {"hours": int(SCAN_ABANDONED_AFTER.total_seconds() // 3600)},
        )


def _dispatch_plan(run_id: int) -> None:
    from dedup.tasks_scan import scan_plan as scan_plan_task  # the tasks import this module

    scan_plan_task.delay(run_id)


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
            scan_chunk_fail(chunk_id=chunk_id, reason=str(error) or error.__class__.__name__)
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
    groups = [
        [group.ids, group.reasons, group.rule_ids]
        for group in dedup_scan.find_groups(chunk.entity, chunk=chunk.key_range)
    ]
    trusted = _trusted_rules(chunk.entity)
    # The groups trusted rules (auto-merge on) find by themselves: only those are merged without a manager.
    trusted_groups = (
        [
            [group.ids, group.reasons, group.rule_ids]
            for group in dedup_scan.find_groups(chunk.entity, chunk=chunk.key_range, rules_to_use=trusted)
        ]
        if trusted
        else []
    )
    seconds = round(time.monotonic() - started, 3)

    with transaction.atomic():
        # Locking the run serialises the chunks' endings, so exactly the last one sees nothing left to do.
        run = ScanRun.objects.select_for_update().get(pk=chunk.run_id)
        current = ScanChunk.objects.select_for_update().get(pk=chunk.pk)
        if run.status != ScanRun.Status.RUNNING:
            return run.pk, False
        if current.status != ScanChunk.Status.DONE:
            current.result = {"groups": groups, "trusted": trusted_groups}
            current.groups_found = len(groups)
            current.seconds = seconds
            current.status = ScanChunk.Status.DONE
            current.finished_at = timezone.now()
            current.error = ""
            current.save(
                update_fields=["result", "groups_found", "seconds", "status", "finished_at", "error"]
            )
            run.heartbeat_at = timezone.now()
            run.save(update_fields=["heartbeat_at"])
        return run.pk, _all_chunks_done(run.pk)


def _all_chunks_done(run_id: int) -> bool:
    return not ScanChunk.objects.filter(run_id=run_id).exclude(status=ScanChunk.Status.DONE).exists()


def _trusted_rules(entity: str) -> list:
    return [rule for rule in dedup_rules.active_rules(entity) if rule.rule.auto_merge]


def scan_chunk_retrying(*, chunk_id: int, reason: str) -> None:
    """Note on a chunk why its attempt failed; its task will try again."""
    ScanChunk.objects.filter(pk=chunk_id).update(status=ScanChunk.Status.PENDING, error=str(reason)[:2000])


@transaction.atomic
def scan_chunk_fail(*, chunk_id: int, reason: str) -> None:
    """Give up on a chunk after its retries: the chunk and its run fail with the reason."""
    chunk = ScanChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None:
        return
    run = ScanRun.objects.select_for_update().get(pk=chunk.run_id)
    ScanChunk.objects.filter(pk=chunk_id).update(
        status=ScanChunk.Status.FAILED, error=str(reason)[:2000], finished_at=timezone.now()
    )
    if run.status == ScanRun.Status.RUNNING:
        _run_fail(
            run,
            _("Part %(index)s of %(entity)s failed: %(reason)s")
            % {"index": chunk.index + 1, "entity": chunk.entity, "reason": reason},
        )


@transaction.atomic
def scan_run_fail(*, run_id: int, reason: str) -> None:
    """Fail a running scan (its join gave up); the queue keeps what earlier scans found."""
    run = ScanRun.objects.select_for_update().filter(pk=run_id).first()
    if run is not None and run.status == ScanRun.Status.RUNNING:
        _run_fail(run, reason)


def _run_fail(run: ScanRun, reason: str) -> None:
    run.status = ScanRun.Status.FAILED
    run.failure_reason = str(reason)[:4000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "failure_reason", "finished_at"])


# --- Joining --------------------------------------------------------------------------------------------------


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
            found = [FoundGroup(g.ids, g.reasons, g.rule_ids) for g in scan_groups(run=run, entity=entity)]
            outcome = groups_upsert(entity=entity, found=found, run=run)
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
        trusted = dedup_scan.merge_groups(_chunk_groups(run, entity, "trusted"))
        merged = groups_auto_merge(entity=entity, trusted=trusted)
        stats[entity]["auto_merged"] = merged

    with transaction.atomic():
        run = ScanRun.objects.select_for_update().get(pk=run_id)
        if run.status == ScanRun.Status.RUNNING:
            run.stats = stats
            run.status = ScanRun.Status.DONE
            run.finished_at = timezone.now()
            run.save(update_fields=["stats", "status", "finished_at"])
    return run


def _chunk_groups(run: ScanRun, entity: str, part: str) -> Iterable[dedup_scan.Group]:
    results = ScanChunk.objects.filter(run=run, entity=entity).values_list("result", flat=True)
    for result in results.iterator(chunk_size=8):
        for ids, reasons, rule_ids in (result or {}).get(part, []):
            yield dedup_scan.Group(list(ids), list(reasons), list(rule_ids))


@dataclass
class UpsertOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0


@dataclass
class _RecordInfo:
    owner_id: int | None
    activity: object


def _record_info(spec: EntitySpec, ids: Iterable[int]) -> dict[int, _RecordInfo]:
    """Read the responsible manager and the last change of many records, DB_BATCH per query."""
    model = spec.model
    names = {f.name for f in model._meta.concrete_fields}
    columns = ["pk"]
    owner_column = "owner_id" if "owner" in names else None
    activity_column = next((name for name in ("updated_at", "created_at") if name in names), None)
    columns += [column for column in (owner_column, activity_column) if column]
    info: dict[int, _RecordInfo] = {}
    ids = sorted(set(ids))
    for start in range(0, len(ids), DB_BATCH):
        for row in model._base_manager.filter(pk__in=ids[start : start + DB_BATCH]).values(*columns):
            info[row["pk"]] = _RecordInfo(
                row.get(owner_column) if owner_column else None, row.get(activity_column) if activity_column else None
            )
    return info


def _newest(info: dict[int, _RecordInfo], ids: Iterable[int]):
    times = [info[pk].activity for pk in ids if pk in info and info[pk].activity is not None]
    return max(times) if times else None


def groups_upsert(*, entity: str, found: Sequence[FoundGroup], run: ScanRun | None = None) -> UpsertOutcome:
    """Make the entity's open groups in the queue the `found` ones, with a constant number of queries per batch.

    A found group with the records of an open group touches it; one sharing records with an open group updates
    that group in place (its id, and so its links, stay); any other is a new group. Open groups not found again
    are closed: their records were merged, archived, changed or marked as not duplicates since.
    """
    spec = registry.get(entity)
    outcome = UpsertOutcome()
    now = timezone.now()
    with transaction.atomic():
        # Not locked: a base has many thousands of open groups. A manager's dismissal or merge meanwhile is kept,
        # because closing below only touches groups still open, and the rest never changes a group's status.
        open_groups = {
            group.pk: group
            for group in DuplicateGroup.objects.filter(entity=entity, status=DuplicateGroup.Status.OPEN)
        }
        by_signature = {group.signature: group for group in open_groups.values()}
        group_of_record: dict[int, int] = {}
        members_of: dict[int, set[int]] = defaultdict(set)
        for group_id, record_id in DuplicateGroupMember.objects.filter(group_id__in=list(open_groups)).values_list(
            "group_id", "record_id"
        ).iterator(chunk_size=DB_BATCH):
            group_of_record[record_id] = group_id
            members_of[group_id].add(record_id)

        claimed: set[int] = set()
        unchanged: list[tuple[DuplicateGroup, FoundGroup]] = []
        changed: list[tuple[DuplicateGroup, FoundGroup]] = []
        fresh: list[FoundGroup] = []
        pending: list[FoundGroup] = []
        for item in found:
            group = by_signature.get(item.signature)
            if group is not None and group.pk not in claimed:
                claimed.add(group.pk)
                unchanged.append((group, item))
            else:
                pending.append(item)
        for item in pending:
            overlap: dict[int, int] = defaultdict(int)
            for pk in item.ids:
                group_id = group_of_record.get(pk)
                if group_id is not None and group_id not in claimed:
                    overlap[group_id] += 1
            if overlap:
                best = max(overlap.items(), key=lambda pair: (pair[1], -pair[0]))[0]
                claimed.add(best)
                changed.append((open_groups[best], item))
            else:
                fresh.append(item)

        stale = [pk for pk in open_groups if pk not in claimed]
        for start in range(0, len(stale), DB_BATCH):
            batch = stale[start : start + DB_BATCH]
            DuplicateGroup.objects.filter(pk__in=batch, status=DuplicateGroup.Status.OPEN).update(
                status=DuplicateGroup.Status.CLOSED,
                resolution=_("No longer found by the scan."),
                resolved_at=now,
                updated_at=now,
            )
        outcome.closed = len(stale)

        info = _record_info(spec, [pk for item in found for pk in item.ids])
        rules_through = DuplicateGroup.rules.through
        valid_rules = set(Rule.objects.filter(entity=entity).values_list("pk", flat=True))

        # Touched: the same records again. Every one is marked seen by this run in one UPDATE per batch; only
        # those whose reasons or activity moved on are written row by row (a re-scan rewrites next to nothing).
        unchanged_ids = [group.pk for group, _item in unchanged]
        for start in range(0, len(unchanged_ids), DB_BATCH):
            DuplicateGroup.objects.filter(pk__in=unchanged_ids[start : start + DB_BATCH]).update(last_run=run)
        moved_on = []
        for group, item in unchanged:
            activity = _newest(info, item.ids)
            if group.reasons != item.reasons or group.newest_activity != activity:
                group.reasons = item.reasons
                group.newest_activity = activity
                group.updated_at = now
                moved_on.append(group)
        DuplicateGroup.objects.bulk_update(moved_on, ["reasons", "newest_activity", "updated_at"], batch_size=DB_BATCH)
        outcome.unchanged = len(unchanged)

        # Changed: new membership in place.
        updated = []
        for group, item in changed:
            group.signature = item.signature
            group.size = len(item.ids)
            group.reasons = item.reasons
            group.newest_activity = _newest(info, item.ids)
            group.last_run = run
            group.updated_at = now
            updated.append(group)
        DuplicateGroup.objects.bulk_update(
            updated, ["signature", "size", "reasons", "newest_activity", "last_run", "updated_at"], batch_size=DB_BATCH
        )
        outcome.updated = len(updated)

        run_id = run.pk if run is not None else None
        _insert_rows(
            DuplicateGroup,
            ["entity", "signature", "size", "reasons", "newest_activity", "first_run_id", "last_run_id"],
            (
                (entity, item.signature, len(item.ids), item.reasons, _newest(info, item.ids), run_id, run_id)
                for item in fresh
            ),
        )
        outcome.created = len(fresh)
        group_ids = {}
        if fresh:
            group_ids = dict(
                DuplicateGroup.objects.filter(entity=entity, status=DuplicateGroup.Status.OPEN)
                .values_list("signature", "pk")
                .iterator(chunk_size=10 * DB_BATCH)
            )

        # Members and rules of the changed groups are replaced; the new groups get theirs.
        rewritten = [(group.pk, item) for group, item in changed] + [(group_ids[i.signature], i) for i in fresh]
        changed_ids = [group.pk for group, _item in changed]
        for start in range(0, len(changed_ids), DB_BATCH):
            batch = changed_ids[start : start + DB_BATCH]
            DuplicateGroupMember.objects.filter(group_id__in=batch).delete()
            rules_through.objects.filter(duplicategroup_id__in=batch).delete()
        _insert_rows(
            DuplicateGroupMember,
            ["group_id", "record_id", "owner_id"],
            (
                (group_id, pk, info[pk].owner_id if pk in info else None)
                for group_id, item in rewritten
                for pk in item.ids
            ),
        )
        # The rules of touched groups can change too (a second rule now matches the same records): only those
        # that differ are rewritten.
        current_rules: dict[int, set[int]] = defaultdict(set)
        for start in range(0, len(unchanged_ids), DB_BATCH):
            for group_id, rule_id in rules_through.objects.filter(
                duplicategroup_id__in=unchanged_ids[start : start + DB_BATCH]
            ).values_list("duplicategroup_id", "rule_id"):
                current_rules[group_id].add(rule_id)
        reruled = [
            (group.pk, item)
            for group, item in unchanged
            if current_rules.get(group.pk, set()) != set(item.rule_ids) & valid_rules
        ]
        reruled_ids = [group_id for group_id, _item in reruled]
        for start in range(0, len(reruled_ids), DB_BATCH):
            rules_through.objects.filter(duplicategroup_id__in=reruled_ids[start : start + DB_BATCH]).delete()
        _insert_rows(
            rules_through,
            ["duplicategroup_id", "rule_id"],
            (
                (group_id, rule_id)
                for group_id, item in rewritten + reruled
                for rule_id in sorted(set(item.rule_ids) & valid_rules)
            ),
        )
    return outcome


def _insert_rows(model: type[models.Model], fields: list[str], rows: Iterable[tuple]) -> int:
    """Insert plain rows without building model instances; other columns get their model defaults.

    PostgreSQL gets them by COPY: a scan of a large base writes hundreds of thousands of group members, and
    COPY is several times faster than INSERT there. Other databases get bulk_create.
    """
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(fields, row))) for row in rows]
        model.objects.bulk_create(objects, batch_size=DB_BATCH)
        return len(objects)
    opts = model._meta
    now = timezone.now()
    given = {opts.get_field(name).attname: index for index, name in enumerate(fields)}
    columns = [f for f in opts.concrete_fields if f.attname in given or not (f.primary_key or f.has_db_default())]
    defaults = {}
    for f in columns:
        if f.attname not in given:
            defaults[f.attname] = now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else (
                f.get_default()
            )
    json_columns = {f.attname for f in columns if isinstance(f, models.JSONField)}
    quote = connection.ops.quote_name
    sql = f"COPY {quote(opts.db_table)} ({', '.join(quote(f.column) for f in columns)}) FROM STDIN"
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            values = []
            for f in columns:
                value = row[given[f.attname]] if f.attname in given else defaults[f.attname]
                values.append(json.dumps(value) if f.attname in json_columns and value is not None else value)
            copy.write_row(values)
            count += 1
    return count


# --- Keeping groups current between scans -------------------------------------------------------------------


@transaction.atomic
def groups_refresh(*, entity: str, record_ids: Iterable[int]) -> int:
    """Update the groups holding these records after they were merged, archived or restored; return how many.

    An open group whose records were merged into one is "merged"; one left with fewer than two live records is
    closed; one that lost some records keeps the others. A merged group whose records are live again (the merge
    was undone) is open again.
    """
    spec = registry.get(entity)
    ids = sorted({int(pk) for pk in record_ids})
    if not ids:
        return 0
    group_ids: set[int] = set()
    for start in range(0, len(ids), DB_BATCH):
        group_ids.update(
            DuplicateGroupMember.objects.filter(
                record_id__in=ids[start : start + DB_BATCH],
                group__entity=entity,
                group__status__in=[DuplicateGroup.Status.OPEN, DuplicateGroup.Status.MERGED],
            ).values_list("group_id", flat=True)
        )
    if not group_ids:
        return 0
    groups = list(DuplicateGroup.objects.select_for_update().filter(pk__in=group_ids).order_by("pk"))
    members: dict[int, list[int]] = defaultdict(list)
    for group_id, record_id in DuplicateGroupMember.objects.filter(group_id__in=group_ids).values_list(
        "group_id", "record_id"
    ):
        members[group_id].append(record_id)
    state = _record_state(spec, {pk for pks in members.values() for pk in pks})
    open_signatures = set(
        DuplicateGroup.objects.filter(entity=entity, status=DuplicateGroup.Status.OPEN).exclude(
            pk__in=group_ids
        ).filter(signature__in=[group_signature(members[g.pk]) for g in groups]).values_list("signature", flat=True)
    )
    now = timezone.now()
    changed = 0
    for group in groups:
        record_ids_of_group = members[group.pk]
        live = [pk for pk in record_ids_of_group if pk in state and not state[pk][0]]
        gone = [pk for pk in record_ids_of_group if pk not in live]
        if group.status == DuplicateGroup.Status.MERGED:
            if len(live) >= 2 and group.signature not in open_signatures and len(gone) == 0:
                group.status = DuplicateGroup.Status.OPEN
                group.resolution = _("The merge was undone; the records are back in the queue.")
                group.resolved_at = None
                group.resolved_by = None
                group.updated_at = now
                group.save()
                open_signatures.add(group.signature)
                changed += 1
            continue
        if not gone:
            continue
        merged_together = any(state.get(pk, (False, None))[1] in record_ids_of_group for pk in gone)
        if len(live) <= 1:
            if merged_together and len(live) == 1:
                group.status = DuplicateGroup.Status.MERGED
                group.resolution = _("Merged into #%(id)s.") % {"id": live[0]}
            else:
                group.status = DuplicateGroup.Status.CLOSED
                group.resolution = _("Its records were merged elsewhere or removed.")
            group.resolved_at = now
            group.updated_at = now
            group.save()
        else:
            signature = group_signature(live)
            if signature in open_signatures:
                group.status = DuplicateGroup.Status.CLOSED
                group.resolution = _("The same records are in another group.")
                group.resolved_at = now
            else:
                DuplicateGroupMember.objects.filter(group=group, record_id__in=gone).delete()
                group.signature = signature
                group.size = len(live)
                open_signatures.add(signature)
            group.updated_at = now
            group.save()
        changed += 1
    return changed


def _record_state(spec: EntitySpec, ids: Iterable[int]) -> dict[int, tuple[bool, int | None]]:
    """Return {pk: (archived, merged into)} for the records that still exist."""
    model = spec.model
    names = {f.name for f in model._meta.concrete_fields}
    archived = spec.archived_attr if spec.archived_attr in names else None
    merged_into = f"{MERGED_INTO_FIELD}_id" if MERGED_INTO_FIELD in names else None
    columns = ["pk"] + [column for column in (archived, merged_into) if column]
    state = {}
    ids = sorted(ids)
    for start in range(0, len(ids), DB_BATCH):
        for row in model._base_manager.filter(pk__in=ids[start : start + DB_BATCH]).values(*columns):
            state[row["pk"]] = (bool(row.get(archived)) if archived else False, row.get(merged_into))
    return state


def _on_records_bulk_saved(sender=None, model=None, pks=(), **kwargs):
    """Merges, undos and bulk writes send this once committed: keep the queue's groups current."""
    spec = registry.for_model(model) if model is not None else None
    if spec is None or not pks:
        return
    try:
        groups_refresh(entity=spec.key, record_ids=pks)
    except Exception:  # the queue is repaired by the next scan; never fail the merge that already committed
        logger.exception("Could not refresh the duplicate groups of %s %s", spec.key, list(pks)[:20])


def connect() -> None:
    """Keep the review queue current after merges (called once from DedupConfig.ready)."""
    records_bulk_saved.connect(_on_records_bulk_saved, dispatch_uid="dedup.scan_runs.bulk_saved")


# --- Queue actions --------------------------------------------------------------------------------------------


def _locked_open_group(group: DuplicateGroup) -> DuplicateGroup:
    group = DuplicateGroup.objects.select_for_update().get(pk=group.pk)
    if group.status != DuplicateGroup.Status.OPEN:
        raise ScanError(
            _("Group #%(id)s is already %(status)s.") % {"id": group.pk, "status": group.get_status_display()}
        )
    return group


def _live_records(spec: EntitySpec, ids: Iterable[int]) -> list[models.Model]:
    """Return the group's records that exist and are not archived, oldest first."""
    queryset = spec.model._base_manager.filter(pk__in=list(ids))
    if spec.archived_attr:
        queryset = queryset.filter(**{spec.archived_attr: False})
    names = {f.name for f in spec.model._meta.concrete_fields}
    order = ["created_at", "pk"] if "created_at" in names else ["pk"]
    return list(queryset.order_by(*order))


@transaction.atomic
def group_dismiss(*, group: DuplicateGroup, user) -> DuplicateGroup:
    """Dismiss a group: its records are stored as not duplicates of each other, so it never comes back."""
    group = _locked_open_group(group)
    spec = registry.get(group.entity)
    ids = list(group.members.values_list("record_id", flat=True))
    existing = list(spec.model._base_manager.filter(pk__in=ids).values_list("pk", flat=True))
    if len(existing) >= 2:
        not_duplicate_mark(entity=spec, record_ids=existing, user=user)
    group.status = DuplicateGroup.Status.DISMISSED
    group.resolution = _("Not duplicates.")
    group.resolved_at = timezone.now()
    group.resolved_by = user if getattr(user, "pk", None) else None
    group.save(update_fields=["status", "resolution", "resolved_at", "resolved_by", "updated_at"])
    return group


@transaction.atomic
def group_merge(*, group: DuplicateGroup, user, survivor_id: int | None = None) -> MergeJob:
    """Queue the merge of a group's records into the oldest one (or `survivor_id`) as a background merge.

    The group becomes "merged" when the merge commits (the merge engine tells the queue); a refused merge
    (a record changed or was merged meanwhile) leaves it open and the user is notified by the merge.
    """
    group = _locked_open_group(group)
    spec = registry.get(group.entity)
    if group.merge_job_id:
        running = MergeJob.objects.filter(
            pk=group.merge_job_id, status__in=[MergeJob.Status.QUEUED, MergeJob.Status.RUNNING]
        ).exists()
        if running:
            raise ScanError(_("Group #%(id)s is already being merged.") % {"id": group.pk})
    records = _live_records(spec, group.members.values_list("record_id", flat=True))
    if len(records) < 2:
        raise ScanError(
            _("Group #%(id)s has fewer than two records left to merge; the next scan closes it.") % {"id": group.pk}
        )
    survivor = next((record for record in records if record.pk == survivor_id), records[0])
    absorbed = [record for record in records if record.pk != survivor.pk]
    job = merge_job_create(user=user, survivor=survivor, absorbed=absorbed)
    group.merge_job_id = job.pk
    group.save(update_fields=["merge_job_id", "updated_at"])
    return job


# --- Automatic merge ------------------------------------------------------------------------------------------


def groups_auto_merge(*, entity: str, trusted: Sequence[dedup_scan.Group]) -> int:
    """Merge the records that trusted rules (auto-merge on) join by themselves; return how many merges were done.

    Each merge goes through the merge engine as a merge job, so it is in the records' history and can be
    undone; the records' owners are notified. Records whose merge was ever undone are left to the managers
    (they stay in the queue) and never merged again on their own; a group a manager is already merging is
    left alone.
    """
    if not trusted:
        return 0
    spec = registry.get(entity)
    content_type = ContentType.objects.get_for_model(spec.model)
    all_ids = sorted({pk for group in trusted for pk in group.ids})
    undone: set[int] = set()
    group_of_record: dict[int, int] = {}
    for start in range(0, len(all_ids), DB_BATCH):
        batch = all_ids[start : start + DB_BATCH]
        undone.update(
            MergeJobRecord.objects.filter(
                content_type=content_type, record_id__in=batch, job__status=MergeJob.Status.UNDONE
            ).values_list("record_id", flat=True)
        )
        group_of_record.update(
            DuplicateGroupMember.objects.filter(
                record_id__in=batch, group__entity=entity, group__status=DuplicateGroup.Status.OPEN
            ).values_list("record_id", "group_id")
        )
    rule_names = dict(Rule.objects.filter(entity=entity).values_list("pk", "name"))
    merged = 0
    for group in trusted:
        if undone.intersection(group.ids):
            continue
        try:
            job = _auto_merge_one(
                spec,
                content_type,
                group,
                group_id=group_of_record.get(group.ids[0]),
                rule_names=[rule_names[pk] for pk in group.rule_ids if pk in rule_names],
            )
        except MergeError as error:
            logger.info("Automatic merge of %s %s refused: %s", entity, group.ids, error)
            continue
        if job is not None and job.status == MergeJob.Status.DONE:
            merged += 1
    return merged


def _auto_merge_one(
    spec: EntitySpec,
    content_type: ContentType,
    found: dedup_scan.Group,
    *,
    group_id: int | None,
    rule_names: list[str],
) -> MergeJob | None:
    records = _live_records(spec, found.ids)
    if len(records) < 2:
        return None
    survivor, absorbed = records[0], records[1:]
    owner_ids = {getattr(record, "owner_id", None) for record in records} - {None}
    whole_group = False
    with transaction.atomic():
        if group_id is not None:
            group = DuplicateGroup.objects.select_for_update().filter(pk=group_id).first()
            if group is not None and (group.status != DuplicateGroup.Status.OPEN or group.merge_job_id):
                return None  # a manager (or an earlier try) already acted on it
            whole_group = group is not None and group.size == len(records)
        job = _system_merge_job_create(spec, content_type, survivor=survivor, absorbed=absorbed)
        if whole_group:
            DuplicateGroup.objects.filter(pk=group_id).update(merge_job_id=job.pk, updated_at=timezone.now())
    with translation.override(settings.LANGUAGE_CODE):
        job = merge_job_run(job_id=job.pk)
    if job is None or job.status != MergeJob.Status.DONE:
        return job
    if whole_group:
        DuplicateGroup.objects.filter(pk=group_id).update(auto_merged=True)
    # The merge tells the queue once committed; refreshing here as well keeps it right inside any transaction.
    groups_refresh(entity=spec.key, record_ids=found.ids)
    survivor.refresh_from_db()
    _notify_owners(
        spec, job=job, survivor=survivor, count=len(absorbed), owner_ids=owner_ids, found=found, rule_names=rule_names
    )
    return job


def _system_merge_job_create(
    spec: EntitySpec, content_type: ContentType, *, survivor: models.Model, absorbed: Sequence[models.Model]
) -> MergeJob:
    """Record an automatic merge as a merge job without a requesting user, so it is in the history and undoable.

    `merge_job_create` insists on a user with the merge permission, which the scheduler is not; the job it
    makes is the same row, run by the same `merge_job_run`.
    """
    job = MergeJob.objects.create(
        entity_key=spec.key,
        content_type=content_type,
        survivor_id=survivor.pk,
        absorbed_ids=[record.pk for record in absorbed],
        created_by=None,
        language=settings.LANGUAGE_CODE,
    )
    MergeJobRecord.objects.bulk_create(
        [MergeJobRecord(job=job, content_type=content_type, record_id=survivor.pk, role=MergeJobRecord.Role.SURVIVOR)]
        + [
            MergeJobRecord(job=job, content_type=content_type, record_id=record.pk, role=MergeJobRecord.Role.ABSORBED)
            for record in absorbed
        ]
    )
    return job


def _notify_owners(spec, *, job, survivor, count: int, owner_ids: set[int], found, rule_names: list[str]) -> None:
    if not owner_ids:
        return
    from django.contrib.auth import get_user_model

    url = record_admin_url(spec.model, survivor.pk)
    reasons = "; ".join(found.reasons) or ", ".join(rule_names)
    message = ngettext(
        "Duplicates merged automatically: %(count)d record merged into %(record)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        "Duplicates merged automatically: %(count)d records merged into %(record)s (%(reasons)s). "
        "You can undo it from the record's merge history.",
        count,
    ) % {"count": count, "record": record_label(survivor), "reasons": reasons}
    for user in get_user_model().objects.filter(pk__in=owner_ids, is_active=True):
        notification_send(user=user, message=message, level=Notification.Level.INFO, url=url, job=job)
