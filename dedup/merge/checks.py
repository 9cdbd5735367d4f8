"""Checks before a merge: who may merge, which records can be, and whether they are still as the user saw them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy, ngettext_lazy

from dedup.messages import Message

from . import fields as merge_fields
from .errors import MergeError
from .relations import relation_has_rows, relations_for

MERGE_PERMISSION = "dedup.merge_records"


def merge_permission_check(*, user, model: type[models.Model]) -> None:
    """Raise PermissionDenied unless the user may merge records of ``model``."""
    opts = model._meta
    change = f"{opts.app_label}.{get_permission_codename('change', opts)}"
    if user is None or not user.is_active or not user.has_perm(change):
        raise PermissionDenied(
            Message.of(
                gettext_lazy("You may not change %(records)s, so you cannot merge them."),
                records=opts.verbose_name_plural,
            )
        )
    if not user.has_perm(MERGE_PERMISSION):
        raise PermissionDenied(Message.of(gettext_lazy("You do not have the permission to merge duplicate records.")))


def related_permission_check(*, user, model: type[models.Model], absorbed_pks: Sequence) -> None:
    """Raise PermissionDenied unless the user may change every kind of row the merge would move.

    A merge moves the absorbed records' orders, deals, notes... to the survivor: that changes those rows, so
    it needs the change permission on each of their models, as editing them in the admin would. Kinds the
    user may change are not even looked at; for the others, one EXISTS query each tells whether the absorbed
    records have such rows (a user who may not touch orders can still merge two customers without orders).
    Many-to-many links Django made itself (a record's tags) are part of the record, covered by its permission.
    """
    if user is None:
        return
    content_type_id = None
    refused = []
    for relation in relations_for(model):
        opts = relation.model._meta
        if opts.auto_created:
            continue
        if user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}"):
            continue
        if content_type_id is None:
            content_type_id = ContentType.objects.get_for_model(model).pk
        if relation_has_rows(relation, owner_pks=absorbed_pks, content_type_id=content_type_id):
            refused.append(opts.verbose_name_plural)
    if refused:
        # A message with its parameters, so that a job this fails in the worker stores it as such.
        raise PermissionDenied(
            Message.of(
                gettext_lazy(
                    "The merge would move %(rows)s, which you may not change; "
                    "ask someone who may to merge these records."
                ),
                rows=list(dict.fromkeys(refused)),
            )
        )


def _mergeable_model(model: type[models.Model]) -> type[models.Model]:
    model = model._meta.concrete_model
    try:
        model._meta.get_field(merge_fields.ARCHIVED_FIELD)
        model._meta.get_field(merge_fields.MERGED_INTO_FIELD)
    except FieldDoesNotExist:
        raise MergeError.of(
            gettext_lazy("%(records)s cannot be merged: they have no archive for the merged records."),
            records=model._meta.verbose_name_plural,
        ) from None
    return model


def _merge_input(model, survivor, absorbed, choices, expected) -> tuple[list, dict, dict[str, str]]:
    """Check a merge's input as the service and the job both take it: (absorbed ids, choices, versions seen)."""
    if survivor.pk is None:
        raise MergeError.of(gettext_lazy("Only saved records can be merged."))
    absorbed_pks = _absorbed_pks(model, survivor, absorbed)
    pks = [survivor.pk, *absorbed_pks]
    return absorbed_pks, merge_fields.clean_choices(model, choices, pks), _clean_expected(expected, pks)


def _absorbed_pks(model: type[models.Model], survivor: models.Model, absorbed: Sequence[models.Model]) -> list:
    if isinstance(absorbed, models.Model):
        absorbed = [absorbed]
    absorbed = list(absorbed or [])
    if not absorbed:
        raise MergeError.of(gettext_lazy("Choose at least one record to merge into the priority record."))
    pks = []
    for record in absorbed:
        if record._meta.concrete_model is not model:
            raise MergeError.of(gettext_lazy("Only records of one kind can be merged together."))
        if record.pk is None:
            raise MergeError.of(gettext_lazy("Only saved records can be merged."))
        if record.pk == survivor.pk:
            raise MergeError.of(gettext_lazy("The priority record cannot be merged into itself."))
        if record.pk not in pks:
            pks.append(record.pk)
    return pks


def _parse_version(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    try:
        parsed = parse_datetime(str(value))
    except ValueError:
        parsed = None
    if parsed is None:
        raise MergeError.of(
            gettext_lazy("The record versions sent with the merge are unreadable; reopen the comparison.")
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _clean_expected(expected: Mapping | None, record_pks: Sequence) -> dict[str, str]:
    """Return {str(pk): ISO updated_at} for the records the user saw; records without a version are not checked."""
    cleaned = {}
    for pk, value in (expected or {}).items():
        parsed = _parse_version(value)
        if parsed is not None and str(pk) in {str(p) for p in record_pks}:
            cleaned[str(pk)] = parsed.isoformat()
    return cleaned


def _refuse_missing(model: type[models.Model], pks: Sequence, found: dict) -> None:
    """Refuse a merge some of whose records no longer exist, naming them."""
    missing = [str(pk) for pk in pks if pk not in found]
    if missing:
        raise MergeError.of(
            ngettext_lazy("%(model)s #%(ids)s no longer exists.", "%(model)s #%(ids)s no longer exist.", "count"),
            count=len(missing),
            model=model._meta.verbose_name,
            ids=", #".join(missing),
        )


def _check_current(model: type[models.Model], records: dict, pks: Sequence, expected: dict[str, str]) -> None:
    """Refuse records that are gone, archived, merged meanwhile, or changed since the user saw them."""
    _refuse_missing(model, pks, records)
    for pk in pks:
        record = records[pk]
        if getattr(record, merge_fields.ARCHIVED_FIELD):
            into = getattr(record, f"{merge_fields.MERGED_INTO_FIELD}_id")
            if into:
                raise MergeError.of(
                    gettext_lazy("%(record)s has already been merged into #%(survivor)s meanwhile; reopen the duplicates."),
                    record=record,
                    survivor=into,
                )
            raise MergeError.of(gettext_lazy("%(record)s is archived."), record=record)
        seen = expected.get(str(pk))
        current = getattr(record, merge_fields.VERSION_FIELD, None)
        if seen and current is not None and _parse_version(seen) != current:
            raise MergeError.of(
                gettext_lazy(
                    "%(record)s was changed by someone else after you opened the comparison; reopen it to see "
                    "the changes, then merge again."
                ),
                record=record,
            )
