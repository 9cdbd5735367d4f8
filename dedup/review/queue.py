"""The review queue's services: upsert what a scan found, keep groups current after merges, dismiss, merge."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dedup import audit, registry
from dedup.db import insert_rows
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.scan import Group, group_signature
from dedup.messages import Message
from dedup.merge import merge_job_create
from dedup.merge.fields import MERGED_INTO_FIELD
from dedup.models import MergeJob, Rule
from dedup.models.scan import DuplicateGroup, DuplicateGroupMember, ScanRun
from dedup.registry import EntitySpec
from dedup.signals import records_bulk_saved

from .errors import ScanError


def _resolution(text, **params) -> dict:
    """Return a group's resolution as the fields that store it: the text as written and its message (shown in
    the reader's language)."""
    message = Message.of(text, **params)
    return {"resolution": str(message)[:255], "resolution_data": message.data}


def _resolve(group: DuplicateGroup, text, **params) -> None:
    for name, value in _resolution(text, **params).items():
        setattr(group, name, value)

logger = logging.getLogger(__name__)

# Rows per query when reading records and writing group members; below every database's parameter limit.
DB_BATCH = 2000


@dataclass
class UpsertOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0


class RecordInfo(NamedTuple):
    """What the queue shows of a group's record: its responsible manager and when it last changed."""

    owner_id: int | None
    activity: datetime | None


def record_info(spec: EntitySpec, ids: Iterable[int]) -> dict[int, RecordInfo]:
    """Read the responsible manager and the last change of many records, DB_BATCH per query."""
    model = spec.model
    names = {f.name for f in model._meta.concrete_fields}
    owner_column = "owner_id" if "owner" in names else None
    activity_column = next((name for name in ("updated_at", "created_at") if name in names), None)
    columns = ["pk"] + [column for column in (owner_column, activity_column) if column]
    info: dict[int, RecordInfo] = {}
    ids = sorted(set(ids))
    for start in range(0, len(ids), DB_BATCH):
        for row in model._base_manager.filter(pk__in=ids[start : start + DB_BATCH]).values(*columns):
            info[row["pk"]] = RecordInfo(
                row.get(owner_column) if owner_column else None, row.get(activity_column) if activity_column else None
            )
    return info


def record_info_dump(info: dict[int, RecordInfo]) -> list[list]:
    """Return record info as JSON data (a chunk's result carries it to the join)."""
    return [[pk, item.owner_id, item.activity.isoformat() if item.activity else None] for pk, item in info.items()]


def record_info_load(rows: Iterable[Sequence]) -> dict[int, RecordInfo]:
    return {
        int(pk): RecordInfo(owner_id, datetime.fromisoformat(activity) if activity else None)
        for pk, owner_id, activity in rows
    }


def _newest(info: dict[int, RecordInfo], ids: Iterable[int]):
    times = [info[pk].activity for pk in ids if pk in info and info[pk].activity is not None]
    return max(times) if times else None


class _Open(NamedTuple):
    pk: int
    signature: str
    reasons: list
    newest_activity: datetime | None


def groups_upsert(
    *,
    entity: str,
    found: Sequence[Group],
    run: ScanRun | None = None,
    info: dict[int, RecordInfo] | None = None,
) -> UpsertOutcome:
    """Make the entity's open groups in the queue the `found` ones, with a constant number of queries per batch.

    A found group with the records of an open group is that group (its reasons and activity refreshed when they
    moved on); one sharing records with an open group updates that group in place (its id, and so its links,
    stay); any other is a new group. Open groups not found again are closed: their records were merged,
    archived, changed or marked as not duplicates since. `info` is what the chunks read of the records (their
    managers and last changes); what it lacks is read here.
    """
    spec = registry.get(entity)
    outcome = UpsertOutcome()
    now = timezone.now()
    with transaction.atomic():
        # Not locked: a base has many thousands of open groups. A manager's dismissal or merge meanwhile is kept,
        # because closing below only touches groups still open, and the rest never changes a group's status.
        open_groups = {
            row[0]: _Open(*row)
            for row in DuplicateGroup.objects.filter(entity=entity, status=DuplicateGroup.Status.OPEN)
            .values_list("pk", "signature", "reasons", "newest_activity")
            .iterator(chunk_size=10 * DB_BATCH)
        }
        by_signature = {group.signature: group for group in open_groups.values()}
        group_of_record: dict[int, int] = dict(
            DuplicateGroupMember.objects.filter(group__entity=entity, group__status=DuplicateGroup.Status.OPEN)
            .values_list("record_id", "group_id")
            .iterator(chunk_size=10 * DB_BATCH)
        )

        claimed: set[int] = set()
        unchanged: list[tuple[_Open, Group]] = []
        changed: list[tuple[_Open, Group]] = []
        fresh: list[Group] = []
        pending: list[Group] = []
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
                **_resolution(gettext_lazy("No longer found by the scan.")),
                resolved_at=now,
                updated_at=now,
            )
        outcome.closed = len(stale)

        info = dict(info or {})
        missing = {pk for item in found for pk in item.ids if pk not in info}
        if missing:
            info.update(record_info(spec, missing))
        rules_through = DuplicateGroup.rules.through
        valid_rules = set(Rule.objects.filter(entity=entity).values_list("pk", flat=True))

        # Found again: only those whose reasons or activity moved on are written (a daily re-scan of an unchanged
        # base writes next to nothing).
        unchanged_ids = [group.pk for group, _item in unchanged]
        moved_on = []
        for group, item in unchanged:
            activity = _newest(info, item.ids)
            if group.reasons != item.reasons or group.newest_activity != activity:
                moved_on.append(
                    DuplicateGroup(pk=group.pk, reasons=item.reasons, newest_activity=activity, updated_at=now)
                )
        DuplicateGroup.objects.bulk_update(moved_on, ["reasons", "newest_activity", "updated_at"], batch_size=DB_BATCH)
        outcome.unchanged = len(unchanged)

        # Changed: new membership in place.
        updated = [
            DuplicateGroup(
                pk=group.pk,
                signature=item.signature,
                size=len(item.ids),
                reasons=item.reasons,
                newest_activity=_newest(info, item.ids),
                last_run=run,
                updated_at=now,
            )
            for group, item in changed
        ]
        DuplicateGroup.objects.bulk_update(
            updated, ["signature", "size", "reasons", "newest_activity", "last_run", "updated_at"], batch_size=DB_BATCH
        )
        outcome.updated = len(updated)

        run_id = run.pk if run is not None else None
        insert_rows(
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
        insert_rows(
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
        insert_rows(
            rules_through,
            ["duplicategroup_id", "rule_id"],
            (
                (group_id, rule_id)
                for group_id, item in rewritten + reruled
                for rule_id in sorted(set(item.rule_ids) & valid_rules)
            ),
        )
    return outcome


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
                _resolve(group, gettext_lazy("The merge was undone; the records are back in the queue."))
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
                _resolve(group, gettext_lazy("Merged into #%(id)s."), id=live[0])
            else:
                group.status = DuplicateGroup.Status.CLOSED
                _resolve(group, gettext_lazy("Its records were merged elsewhere or removed."))
            group.resolved_at = now
            group.updated_at = now
            group.save()
        else:
            signature = group_signature(live)
            if signature in open_signatures:
                group.status = DuplicateGroup.Status.CLOSED
                _resolve(group, gettext_lazy("The same records are in another group."))
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


def _on_records_bulk_saved(sender=None, model=None, pks=(), created=False, **kwargs):
    """Merges, undos and bulk writes send this once committed: keep the queue's groups current."""
    spec = registry.for_model(model) if model is not None else None
    if spec is None or not pks or created:  # new records are in no group yet
        return
    try:
        groups_refresh(entity=spec.key, record_ids=pks)
    except Exception:  # the queue is repaired by the next scan; never fail the merge that already committed
        logger.exception("Could not refresh the duplicate groups of %s %s", spec.key, list(pks)[:20])


def connect() -> None:
    """Keep the review queue current after merges (called once from DedupConfig.ready)."""
    records_bulk_saved.connect(_on_records_bulk_saved, dispatch_uid="dedup.review.bulk_saved")


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


def dismiss_permission_check(*, user, model: type[models.Model]) -> None:
    """Raise PermissionDenied unless the user may change records of ``model`` (and so say they differ)."""
    opts = model._meta
    change = f"{opts.app_label}.{get_permission_codename('change', opts)}"
    if not user.is_active or not user.has_perm(change):
        raise PermissionDenied(
            _("You may not change %(records)s, so you cannot mark them as not duplicates.")
            % {"records": opts.verbose_name_plural}
        )


@transaction.atomic
def group_dismiss(*, group: DuplicateGroup, user) -> DuplicateGroup:
    """Dismiss a group: its records are stored as not duplicates of each other, so it never comes back.

    A user needs change permission on the records' model (the queue's own permissions are not enough: the
    "not a duplicate" pairs change what every screen shows about those records); ``user=None`` is the system.
    """
    spec = registry.get(group.entity)
    if user is not None:
        dismiss_permission_check(user=user, model=spec.model)
    group = _locked_open_group(group)
    ids = list(group.members.values_list("record_id", flat=True))
    existing = list(spec.model._base_manager.filter(pk__in=ids).values_list("pk", flat=True))
    if len(existing) >= 2:
        not_duplicate_mark(entity=spec, record_ids=existing, user=user)
        audit.not_duplicates_logged(
            user=user,
            records=list(spec.model._base_manager.filter(pk__in=existing).order_by("pk")),
            where=Message.of(gettext_lazy("(Review queue, group #%(id)s dismissed.)"), id=group.pk),
        )
    group.status = DuplicateGroup.Status.DISMISSED
    _resolve(group, gettext_lazy("Not duplicates."))
    group.resolved_at = timezone.now()
    group.resolved_by = user if getattr(user, "pk", None) else None
    group.save(update_fields=["status", "resolution", "resolution_data", "resolved_at", "resolved_by", "updated_at"])
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
