"""Automatic merge: the groups that trusted rules (auto-merge on) find by themselves are merged by the scan."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone, translation

from dedup import messages, registry
from dedup.engine import scan as dedup_scan
from dedup.merge import MergeError, merge_job_run
from dedup.merge.system import system_merge_job_create
from dedup.messages import Message
from dedup.models import MergeJob, MergeJobRecord, Notification, Rule
from dedup.models.scan import DuplicateGroup, DuplicateGroupMember
from dedup.notifications import notification_send
from dedup.records import record_admin_url
from dedup.registry import EntitySpec

from .queue import DB_BATCH, _live_records, groups_refresh

logger = logging.getLogger(__name__)


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
    rule_names = {rule.pk: rule.display_name for rule in Rule.objects.filter(entity=entity).only("pk", "name")}
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
        job = system_merge_job_create(survivor=survivor, absorbed=absorbed)
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


def _notify_owners(spec, *, job, survivor, count: int, owner_ids: set[int], found, rule_names: list[str]) -> None:
    if not owner_ids:
        return
    from django.contrib.auth import get_user_model

    url = record_admin_url(spec.model, survivor.pk)
    reasons = Message.join(found.reasons, "; ") if found.reasons else ", ".join(rule_names)
    message = Message(messages.AUTO_MERGED, count=count, record=survivor, reasons=reasons)
    for user in get_user_model().objects.filter(pk__in=owner_ids, is_active=True):
        notification_send(user=user, message=message, level=Notification.Level.INFO, url=url, job=job)
