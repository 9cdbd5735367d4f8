"""Undo an import: delete the records it created, put back what it changed in records that existed.

The batch's rows (crm.models.ImportRow) hold what each file row did: the id of a record it created, and for an
update the fields' values before and after, the contact rows and tags it added (as crm/intake/revert.py keeps
an intake update). Everything or nothing is undone, in one transaction, with the records locked; refused with
a message when a record was merged since (undo the merge first) or changed since (the edit would be lost).
"""
from __future__ import annotations

from collections import defaultdict

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup.audit import audit_log
from dedup.merge.fields import dump_value, field_label, load_value
from dedup.records import record_label
from dedup.signals import records_bulk_saved

from ..models import Company, ImportBatch, ImportRow
from .engine import IMPORTERS

# Records read and locked per query: well under SQLite's parameter limit, and a bounded IN list elsewhere.
UNDO_CHUNK = 500
# The contact relations an import adds rows to, by model label, and their name in duplicate control.
_CONTACT_RELATIONS = {"crm.phone": "phones", "crm.email": "emails", "crm.messengerhandle": "messengers"}


def import_model(batch: ImportBatch) -> type[models.Model]:
    return IMPORTERS[batch.entity].model


def undo_permission_check(*, user, batch: ImportBatch) -> None:
    """Raise PermissionDenied unless the user may delete and change the records of the import's entity."""
    opts = import_model(batch)._meta
    for action in ("delete", "change"):
        if user is None or not user.is_active or not user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
            raise PermissionDenied(
                _("You may not delete or change %(records)s, so you cannot undo this import.")
                % {"records": opts.verbose_name_plural}
            )


def _chunks(values: list, size: int = UNDO_CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _refuse_merged(record) -> None:
    if record.is_archived:
        raise ValidationError(
            _("%(record)s was merged into another record since the import; undo that merge first.")
            % {"record": record_label(record)}
        )


@transaction.atomic
def import_undo(*, batch: ImportBatch, user) -> ImportBatch:
    """Delete what the import created and restore what it updated; everything or nothing.

    Refused (ValidationError) when the import was undone already, is still running, or a record it touched was
    merged or edited since.
    """
    batch = ImportBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.undone_at is not None:
        raise ValidationError(_("This import was undone already."))
    if batch.finished_at is None:
        raise ValidationError(_("This import has not finished; it cannot be undone yet."))
    undo_permission_check(user=user, batch=batch)
    model = import_model(batch)
    created_ids = list(
        batch.lines.filter(action__in=[ImportRow.Action.CREATED, ImportRow.Action.FLAGGED])
        .exclude(record_id=None).values_list("record_id", flat=True)
    )
    created = set(created_ids)
    # Records created by this import and updated by a later row of it are simply deleted.
    updates = [
        line for line in batch.lines.filter(action=ImportRow.Action.UPDATED).order_by("-line", "-id")
        if line.record_id not in created
    ]

    # Check everything before changing anything.
    for pks in _chunks(sorted(created)):
        for record in model._base_manager.select_for_update().filter(pk__in=pks).order_by("pk"):
            _refuse_merged(record)
            if record.updated_at > batch.finished_at:
                raise ValidationError(
                    _("%(record)s was changed after the import; undoing it would delete those edits.")
                    % {"record": record_label(record)}
                )
    touched = sorted({line.record_id for line in updates})
    records: dict[int, models.Model] = {}
    for pks in _chunks(touched):
        records.update(
            (record.pk, record) for record in model._base_manager.select_for_update().filter(pk__in=pks).order_by("pk")
        )
    last_after: dict[int, dict] = {}
    for line in updates:  # newest line first: what the record holds now is the newest row's "after"
        record = records.get(line.record_id)
        if record is None:
            raise ValidationError(
                _("%(model)s #%(pk)s was deleted; the import cannot be undone.")
                % {"model": model._meta.verbose_name, "pk": line.record_id}
            )
        _refuse_merged(record)
        for name, values in (line.changes.get("fields") or {}).items():
            last_after.setdefault(record.pk, {}).setdefault(name, values["after"])
    for pk, fields in last_after.items():
        record = records[pk]
        edited = [
            field_label(model, name) for name, after in fields.items()
            if dump_value(model._meta.get_field(name), getattr(record, model._meta.get_field(name).attname)) != after
        ]
        if edited:
            raise ValidationError(
                _("%(fields)s of %(record)s changed after the import; undoing it would overwrite those edits.")
                % {"fields": ", ".join(edited), "record": record_label(record)}
            )

    # Put back what the updates replaced, newest row first, so each record ends as it was before the file.
    changed: dict[int, set[str]] = defaultdict(set)
    grown: dict[int, set[str]] = defaultdict(set)
    for line in updates:
        record = records[line.record_id]
        for name, values in (line.changes.get("fields") or {}).items():
            model_field = model._meta.get_field(name)
            setattr(record, model_field.attname, load_value(model_field, values["before"]))
            changed[record.pk].add(name)
        for label, pks in (line.changes.get("added") or {}).items():
            _contact_model(label)._base_manager.filter(pk__in=pks).delete()
            grown[record.pk].add(_CONTACT_RELATIONS[label])
        if line.changes.get("tags"):
            record.tags.remove(*line.changes["tags"])
    for pk, names in changed.items():
        records[pk].save(update_fields=[*sorted(names), "updated_at"])
    for pk, relations in grown.items():
        records_bulk_saved.send(sender=model, model=model, pks=[pk], fields=sorted(relations))
    if records:
        audit_log(
            user=user,
            records=list(records.values()),
            message=_("Import #%(id)s undone: the values it replaced are back.") % {"id": batch.pk},
        )

    # Delete what it created (their contacts, tags and keys go with them), and the companies it created for
    # company names that no customer holds any more.
    for pks in _chunks(sorted(created)):
        model._base_manager.filter(pk__in=pks).delete()
    if batch.companies:
        orphans = Company._base_manager.filter(pk__in=batch.companies, customers__isnull=True, is_archived=False)
        orphans.filter(updated_at__lte=batch.finished_at).delete()
    batch.undone_at = timezone.now()
    batch.undone_by = user if getattr(user, "pk", None) else None
    batch.save(update_fields=["undone_at", "undone_by"])
    return batch


def _contact_model(label: str) -> type[models.Model]:
    from django.apps import apps

    return apps.get_model(label)


def undo_summary(batch: ImportBatch) -> str:
    """Return what an undo did, for a message to the person who asked."""
    return ngettext(
        "Import #%(id)s undone: %(created)s created record deleted, %(updated)s updated record restored.",
        "Import #%(id)s undone: %(created)s created records deleted, %(updated)s updated records restored.",
        batch.created,
    ) % {"id": batch.pk, "created": batch.created, "updated": batch.updated}
