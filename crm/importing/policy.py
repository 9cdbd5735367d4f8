"""The duplicate policy on the admin's import (django-import-export resources), as import_csv applies it.

A row that no external ID or id finds is asked about with crm.importing.duplicates (the finder of the card, on
the row's unsaved values); the policy then skips it, updates the matched record (only its empty fields; phones,
emails, handles and tags added) or creates it and flags it. The resource saves rows one by one, so a row
duplicating an earlier row of the file meets it in the index. Each row's outcome is a sentence on the preview and
the result page; the confirmed import is recorded as an ImportBatch (crm.importing.undo takes it back), with the
values each update replaced.
"""
from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from import_export.results import RowResult

from dedup import registry
from dedup.merge.fields import dump_value
from dedup.messages import Message

from ..models import DuplicatePolicy, ImportBatch, ImportRow
from . import cells
from .cells import cell_text
from .duplicates import DEFAULT_POLICY, SAME_EXTERNAL_ID, RowMatch, row_duplicate, row_match_values
from .report import line_text

_CONTACTS = {"phones": "crm.phone", "emails": "crm.email", "messengers": "crm.messengerhandle"}


class DuplicatePolicyResourceMixin:
    """Mixed into EntityResource: the policy, the per-row sentence and the import batch."""

    def __init__(self, *args, policy: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.policy = policy if policy in DuplicatePolicy.values else DEFAULT_POLICY
        self._line = 1  # the header is line 1
        self._state: dict[str, Any] = {}
        self._lines: list[dict] = []
        self._created_lines: dict[int, int] = {}
        self._company_pks: list[int] = []  # companies made for company names no company holds (undo removes them)

    def company_created(self, company) -> None:
        """Note a company the import made for a row's company name, so that undoing the import removes it."""
        self._company_pks.append(company.pk)

    # The row's match

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        self._line += 1
        self._state = {"line": self._line}

    def get_instance(self, instance_loader, row):
        instance = self.lookup_instance(row)
        if instance is not None:
            external_id = cell_text(row.get("external_id"))
            reasons = [Message(SAME_EXTERNAL_ID, value=external_id).stored()] if external_id else []
            self._state["match"] = RowMatch(record=instance, reasons=reasons)
            self._state["before"] = self._snapshot(instance)
            return instance
        spec = registry.for_model(self._meta.model)
        match = row_duplicate(spec.key, values=self.row_match_values(spec, row), stage=self.row_stage(row))
        if match is None:
            return None
        self._state["match"] = match
        self._state["duplicate"] = True
        if self.policy == DuplicatePolicy.CREATE:
            return None
        self._state["before"] = self._snapshot(match.record)
        return match.record

    def row_match_values(self, spec: registry.EntitySpec, row) -> dict[str, list[str]]:
        """Return a file row as the finder's {match field: [values]}; a cell that cannot be read is left out."""
        values = {}
        for name in self._meta.model._meta.concrete_fields:
            if name.name in row and isinstance(name, models.CharField):
                values[name.name] = cell_text(row.get(name.name))
        related: dict[str, list[str]] = {}
        for column, relation in (("phone", "phones"), ("email", "emails"), ("messenger", "messengers")):
            field = self.fields.get(column)
            if field is None or column not in row or not hasattr(field, "parse"):
                continue  # none, or a column of the record's own (an order's phone is read with its values)
            try:
                parsed = field.parse(row.get(column))
            except (cells.CellError, ValueError):
                continue
            if relation == "messengers":
                parsed = [f"{channel}:@{username}" if username else f"{channel}:#{chat_id}"
                          for channel, username, chat_id in parsed]
            related[relation] = parsed
        if cell_text(row.get("company_name")):
            related["company"] = [cell_text(row.get("company_name"))]
        return row_match_values(spec, values=values, related=related)

    def row_stage(self, row):
        """Return the stage a new record of this row would be in (leads: the row's, or the pipeline's first)."""
        return None

    def skip_row(self, instance, original, row, import_validation_errors=None):
        if self._state.get("duplicate") and self.policy == DuplicatePolicy.SKIP:
            return True
        return super().skip_row(instance, original, row, import_validation_errors)

    def fill_only(self) -> bool:
        """Whether the row only fills the matched record's empty fields (a duplicate updated by policy)."""
        return bool(self._state.get("duplicate")) and self.policy == DuplicatePolicy.UPDATE

    # What the row became

    def after_import_row(self, row, row_result, **kwargs):
        super().after_import_row(row, row_result, **kwargs)
        match: RowMatch | None = self._state.get("match")
        line = {"line": self._state["line"], "record_id": None, "match_id": None, "match_line": None,
                "reasons": [], "changes": {}}
        if match is not None:
            line.update(match_id=match.pk, match_line=self._created_lines.get(match.pk), reasons=match.reasons)
        kind = row_result.import_type
        if kind == RowResult.IMPORT_TYPE_SKIP:
            line["action"] = ImportRow.Action.SKIPPED
        elif kind == RowResult.IMPORT_TYPE_NEW:
            line["record_id"] = row_result.object_id
            line["action"] = ImportRow.Action.FLAGGED if match is not None else ImportRow.Action.CREATED
            if not line["action"] == ImportRow.Action.FLAGGED:
                line.update(match_id=None, reasons=[])
            self._created_lines[row_result.object_id] = self._state["line"]
        elif kind == RowResult.IMPORT_TYPE_UPDATE:
            line["record_id"] = row_result.object_id
            line["action"] = ImportRow.Action.UPDATED
            instance = self._meta.model._default_manager.get(pk=row_result.object_id)
            line["changes"] = self._changes(self._state.get("before"), instance)
        else:
            return
        row_result.duplicate_note = line_text(self._meta.model, line)
        self._lines.append(line)

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        user = kwargs.get("user")
        counts = {action: 0 for action in ImportRow.Action.values}
        for line in self._lines:
            counts[line["action"]] += 1
        batch = ImportBatch.objects.create(
            entity=self.entity, policy=self.policy, source=ImportBatch.Source.ADMIN,
            file_name=str(kwargs.get("file_name") or "")[:255],
            user=user if getattr(user, "pk", None) else None, rows=self._line - 1,
            created=counts["created"] + counts["flagged"], flagged=counts["flagged"], updated=counts["updated"],
            skipped=counts["skipped"], companies=list(self._company_pks),
        )
        ImportRow.objects.bulk_create(ImportRow(batch=batch, **line) for line in self._lines)
        batch.finished_at = timezone.now()
        batch.save(update_fields=["finished_at"])
        result.import_batch = batch

    # Undo data

    def _snapshot(self, record: models.Model) -> dict:
        return {
            "fields": {f.name: dump_value(f, getattr(record, f.attname)) for f in self._editable(record)},
            "contacts": {relation: set(getattr(record, relation).values_list("pk", flat=True))
                         for relation in _CONTACTS if hasattr(record, relation)},
            "tags": set(record.tags.values_list("pk", flat=True)),
        }

    def _changes(self, before: dict | None, record: models.Model) -> dict:
        if before is None:
            return {}
        after = self._snapshot(record)
        changes: dict[str, Any] = {"fields": {
            name: {"before": before["fields"][name], "after": value}
            for name, value in after["fields"].items() if value != before["fields"].get(name)
        }}
        added = {_CONTACTS[relation]: sorted(pks - before["contacts"].get(relation, set()))
                 for relation, pks in after["contacts"].items()}
        changes["added"] = {label: pks for label, pks in added.items() if pks}
        changes["tags"] = sorted(after["tags"] - before["tags"])
        return changes

    @staticmethod
    def _editable(record: models.Model):
        skip = {"id", "created_at", "updated_at", "is_archived", "merged_into"}
        return [f for f in record._meta.concrete_fields if f.name not in skip]
