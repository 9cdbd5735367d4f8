"""The index's services: keep records' keys current (reindex, after a change, for new records), sync the kinds
with the rules (backfilling new ones), and rebuild an entity's index."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db import models, transaction
from django.utils import timezone

from dedup import registry
from dedup.dispatch import task_send
from dedup.engine import counts, keys, match_settings, rules
from dedup.models import IndexBuild, IndexedKind, MatchKey
from dedup.registry import EntitySpec

from .builds import PROGRESS_EVERY, build_queue, part_pks, part_records_count
from .load import load_records
from .plan import SYNCED_MARKER, forget_seen_kinds, key_kinds, kinds_reading, seen_kinds, stored_kinds
from .write import (
    BATCH_SIZE,
    SMALL_WRITE_ROWS,
    all_pks,
    insert_rows,
    key_rows,
    write_if_kinds_unchanged,
    write_keys,
)

# Records up to which a rule change backfills new kinds of keys during the request; above, a Celery task does.
BACKFILL_INLINE_LIMIT = 20000
# Records per batch of a background rebuild (a few queries each; a batch's records and rows are held at once).
# 1,000, 2,000 and 5,000 measured alike in CPU per record (20,000 customers, every kind, 2026-12-06).
REBUILD_BATCH = 2000
# The Celery task that backfills new kinds of keys (dedup/tasks.py).
BACKFILL_TASK = "dedup.index_backfill"


def indexed_kinds(spec: EntitySpec) -> set[str]:
    """Return the kinds the index keeps for this entity; the first call syncs them with the rules."""
    kinds = stored_kinds(spec)
    if SYNCED_MARKER not in kinds:
        kinds = sync_plan(spec) | {SYNCED_MARKER}
    return key_kinds(kinds)


def _kinds_to_write(spec: EntitySpec) -> tuple[set[str], frozenset[str] | None]:
    """Return the kinds to write and the stored kinds the write must find unchanged (None: just read, no check)."""
    seen = seen_kinds(spec)
    if seen:
        return key_kinds(seen), seen
    return indexed_kinds(spec), None


@transaction.atomic
def sync_plan(
    spec: EntitySpec, *, inline: bool | None = None, also: set[str] = frozenset(), reason: str = IndexBuild.Reason.RULE
) -> set[str]:
    """Make the index hold exactly the kinds the entity needs (its rules, its scored fields): backfill new
    kinds, drop unused ones; `also`: kinds kept before to rewrite in the same backfill (a custom field's type
    changed).

    New kinds are kept from now on by every save at once; the records already there get them in a backfill,
    right away for a base of up to BACKFILL_INLINE_LIMIT records (or with inline=True), else in a Celery task
    after the change commits (one rebuild, with `reason`), so an admin saving a rule never waits minutes.
    """
    needed = rules.plan_kinds(spec)
    present = key_kinds(
        IndexedKind.objects.select_for_update().filter(entity=spec.key).values_list("kind", flat=True)
    )
    added, dropped = needed - present, present - needed
    if dropped:
        IndexedKind.objects.filter(entity=spec.key, kind__in=dropped).delete()
        MatchKey.objects.filter(entity=spec.key, kind__in=dropped).delete()
    if added:
        IndexedKind.objects.bulk_create(
            [IndexedKind(entity=spec.key, kind=kind) for kind in added], ignore_conflicts=True
        )
    filled = added | (set(also) & needed)
    if filled:
        if inline is None:
            inline = spec.model._base_manager.count() <= BACKFILL_INLINE_LIMIT
        if inline:
            backfill(spec, filled)
        else:
            # In the background, with its progress stored: until it is done the screens say the index is
            # being rebuilt (index.builds).
            build_queue(spec=spec, kinds=filled, reason=reason)
    IndexedKind.objects.get_or_create(entity=spec.key, kind=SYNCED_MARKER)
    _mark_settings_version(spec)
    forget_seen_kinds(spec.key)
    return needed


def _mark_settings_version(spec: EntitySpec) -> None:
    """Carry the value settings' version in the entity's stored kinds (dedup.engine.match_settings)."""
    match_settings.refresh()
    version = match_settings.current_version()
    if version:
        IndexedKind.objects.get_or_create(entity=spec.key, kind=match_settings.marker(version))


def backfill(spec: EntitySpec, kinds: set[str], *, progress: Callable[[int], None] | None = None) -> int:
    """Write these kinds of keys for every record of the entity (replacing any of those kinds); return rows."""
    return reindex(spec, all_pks(spec), kinds=set(kinds), replace_kinds=True, compare=True, progress=progress)


def rebuild(spec: EntitySpec, *, progress: Callable[[int], None] | None = None) -> int:
    """Drop and rebuild the whole index of an entity from its records and rules; return rows written."""
    with transaction.atomic():
        MatchKey.objects.filter(entity=spec.key).delete()
        IndexedKind.objects.filter(entity=spec.key).delete()
        kinds = rules.plan_kinds(spec)
        IndexedKind.objects.bulk_create(
            [IndexedKind(entity=spec.key, kind=kind) for kind in kinds | {SYNCED_MARKER}]
        )
        _mark_settings_version(spec)
    # Batches commit one by one: a rebuild of a million records does not hold one huge transaction.
    return reindex(spec, all_pks(spec), kinds=kinds, progress=progress)


def reindex(
    spec: EntitySpec,
    pks: Iterable[int],
    *,
    kinds: set[str] | None = None,
    replace_kinds: bool = False,
    new_records: bool = False,
    compare: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute the keys of these records in batches (a constant number of queries per batch); return the key
    rows they have now.

    Records that no longer exist or are archived end up with no keys. With replace_kinds, only the given kinds
    are replaced (a backfill); otherwise every key of the records is. new_records: the records were just
    created and have no keys yet, so none are deleted first. compare (rebuilds): the stored keys are read and
    only the difference is written (write.write_changes).
    """
    if kinds is None:
        kinds = indexed_kinds(spec)
    return write_keys(
        spec, pks, kinds, replace_kinds=replace_kinds, new_records=new_records, compare=compare,
        batch_size=batch_size, progress=progress,
    )


def reindex_changed(spec: EntitySpec, pks: list[int], fields: Iterable[str] | None) -> None:
    """Rewrite the keys of a few records after these fields changed (all their keys when fields is None)."""
    fields = list(fields) if fields else None
    kinds, expected = _kinds_to_write(spec)
    if expected is not None and len(pks) <= SMALL_WRITE_ROWS:
        wanted = kinds_reading(spec, fields, available=kinds) if fields else None
        write = kinds if wanted is None else wanted
        rows = key_rows(spec, load_records(spec, pks, write), write) if write else []
        if len(rows) <= SMALL_WRITE_ROWS and write_if_kinds_unchanged(
            spec, expected, rows, delete_pks=pks if write else None, delete_kinds=wanted
        ):
            return
        kinds = indexed_kinds(spec)  # changed meanwhile: read afresh
    wanted = kinds_reading(spec, fields, available=kinds) if fields else None
    if wanted is None:
        reindex(spec, pks, kinds=kinds)
    elif wanted:
        reindex(spec, pks, kinds=wanted, replace_kinds=True)


def reindex_read_through(spec: EntitySpec, pks: list[int], field_names: frozenset[str]) -> None:
    """Rewrite, for these records, the kinds of keys of the match fields named (the fields reading a changed related
    row: a phone saved rewrites its owner's phone keys); "" names the stage.

    As reindex_changed: with the kinds this process last read, checked by the write itself, so a phone's save
    pays a query for its owner and phones and one for the write, none for the kinds.
    """
    kinds, expected = _kinds_to_write(spec)
    if expected is not None and len(pks) <= SMALL_WRITE_ROWS:
        wanted = _kinds_of_fields(kinds, field_names)
        rows = key_rows(spec, load_records(spec, pks, wanted), wanted) if wanted else []
        # With nothing to write, the statement still checks that no kind reads these fields now.
        if len(rows) <= SMALL_WRITE_ROWS and write_if_kinds_unchanged(
            spec, expected, rows, delete_pks=pks if wanted else None, delete_kinds=wanted
        ):
            return
        kinds = indexed_kinds(spec)  # changed meanwhile: read afresh
    wanted = _kinds_of_fields(kinds, field_names)
    if wanted:
        reindex(spec, pks, kinds=wanted, replace_kinds=True)


def _kinds_of_fields(kinds: set[str], field_names: frozenset[str]) -> set[str]:
    return {kind for kind in kinds if keys.field_of_kind(kind)[0] in field_names}


def index_new_records(spec: EntitySpec, records: Iterable[models.Model]) -> int:
    """Write the keys of records just created, from the instances as given (their to-many relations attached
    with registry.attach_related): nothing is read back and there are no old keys to delete."""
    records = list(records)
    kinds, expected = _kinds_to_write(spec)
    if expected is not None and len(records) <= SMALL_WRITE_ROWS:
        rows = key_rows(spec, records, kinds) if kinds else []
        if len(rows) <= SMALL_WRITE_ROWS and write_if_kinds_unchanged(spec, expected, rows):
            return len(rows)
        kinds = indexed_kinds(spec)  # changed meanwhile: read afresh
    if not kinds:
        return 0
    rows = key_rows(spec, records, kinds)
    insert_rows(rows)
    return len(rows)


def build_run(*, build_id: int) -> IndexBuild | None:
    """Run a queued rebuild (a redelivered one that is done already does nothing); return its row."""
    with transaction.atomic():
        build = IndexBuild.objects.select_for_update().filter(pk=build_id).first()
        if build is None or build.status == IndexBuild.Status.DONE:
            return build
        try:
            spec = registry.get(build.entity)
        except KeyError:
            build.status, build.error, build.finished_at = IndexBuild.Status.FAILED, "unregistered", timezone.now()
            build.save(update_fields=["status", "error", "finished_at"])
            return build
        build.status, build.started_at, build.done = IndexBuild.Status.RUNNING, timezone.now(), 0
        build.total = part_records_count(spec, build)
        build.save(update_fields=["status", "started_at", "done", "total"])
    done = 0
    stored = 0

    def progress(count: int) -> None:
        nonlocal done, stored
        done += count
        if done - stored >= PROGRESS_EVERY:
            stored = done
            IndexBuild.objects.filter(pk=build.pk).update(done=done)

    try:
        available = indexed_kinds(spec)
        wanted = set(build.kinds) & available if build.kinds else available  # a rule removed meanwhile
        if wanted:
            reindex(
                spec, part_pks(spec, build), kinds=wanted, replace_kinds=True, compare=True,
                batch_size=REBUILD_BATCH, progress=progress,
            )
    except Exception as error:
        IndexBuild.objects.filter(pk=build.pk).update(
            status=IndexBuild.Status.FAILED, finished_at=timezone.now(), done=done, error=str(error)[:2000]
        )
        raise
    IndexBuild.objects.filter(pk=build.pk).update(
        status=IndexBuild.Status.DONE, finished_at=timezone.now(), done=max(done, build.total)
    )
    # The stored figures (change-list counts) may have been re-found while keys were missing: a task of its own
    # re-finds them (minutes at a million records), as after any rule change, once the last part is done; the
    # card reads the keys at once.
    if build.batch is None or not IndexBuild.objects.filter(batch=build.batch).exclude(
        status=IndexBuild.Status.DONE
    ).exists():
        task_send(counts.REBUILD_TASK, args=[spec.key])
    build.refresh_from_db()
    return build
