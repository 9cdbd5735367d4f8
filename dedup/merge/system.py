"""Merges the system decides on (the scan's auto-merge, the intake): recorded as merge jobs and run at once.

A merge nobody clicked must still be in the records' merge history and undoable, so it is the same MergeJob
row a manager's merge makes, run by the same `merge_job_run` — in the caller's process and transaction,
because the intake has to answer with the surviving record and the scan counts what it merged.
`merge_job_create` is not used: it insists on a user with the merge permission and sends a Celery task.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import translation
from django.utils.translation import gettext_lazy

from dedup import registry
from dedup.models import MergeJob, MergeJobRecord

from . import fields as merge_fields
from .errors import MergeError
from .jobs import merge_job_run


@transaction.atomic
def system_merge_job_create(
    *,
    survivor: models.Model,
    absorbed: Sequence[models.Model],
    choices: Mapping[str, int] | None = None,
    user=None,
) -> MergeJob:
    """Record a merge the system decided on as a queued merge job (no task is sent: the caller runs it)."""
    model = type(survivor)._meta.concrete_model
    spec = registry.for_model(model)
    if spec is None:
        raise MergeError.of(
            gettext_lazy("%(records)s do not take part in duplicate control."), records=model._meta.verbose_name_plural
        )
    absorbed_pks = [record.pk for record in absorbed]
    content_type = ContentType.objects.get_for_model(model)
    job = MergeJob.objects.create(
        entity_key=spec.key,
        content_type=content_type,
        survivor_id=survivor.pk,
        absorbed_ids=absorbed_pks,
        choices=merge_fields.clean_choices(model, choices, [survivor.pk, *absorbed_pks]),
        created_by=user,
        language=settings.LANGUAGE_CODE,
    )
    MergeJobRecord.objects.bulk_create(
        [MergeJobRecord(job=job, content_type=content_type, record_id=survivor.pk, role=MergeJobRecord.Role.SURVIVOR)]
        + [
            MergeJobRecord(job=job, content_type=content_type, record_id=pk, role=MergeJobRecord.Role.ABSORBED)
            for pk in absorbed_pks
        ]
    )
    return job


def system_merge_run(
    *,
    survivor: models.Model,
    absorbed: Sequence[models.Model],
    choices: Mapping[str, int] | None = None,
    user=None,
) -> MergeJob:
    """Record and run a system merge now; return the job (done, or failed with its reason)."""
    job = system_merge_job_create(survivor=survivor, absorbed=absorbed, choices=choices, user=user)
    with translation.override(settings.LANGUAGE_CODE):
        return merge_job_run(job_id=job.pk)
