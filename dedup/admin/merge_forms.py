"""Forms of the managers' merge screens: the duplicate list behind the badge and the compare table."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from dedup.admin.compare import Cell, CompareRow, CompareTable


class DuplicateSelectionForm(forms.Form):
    """The list behind the badge: a priority record, the ticked records and the ones left unticked.

    The current record is always part of the merge; every other record shown is either ticked (merged) or
    unticked (remembered as "not a duplicate" of the current one).
    """

    ACTION_COMPARE = "compare"
    ACTION_DISMISS = "dismiss"

    priority = forms.TypedChoiceField(label=_("Priority record"), coerce=int, widget=forms.RadioSelect)
    include = forms.TypedMultipleChoiceField(
        label=_("Include"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    shown = forms.TypedMultipleChoiceField(coerce=int, widget=forms.MultipleHiddenInput)
    action = forms.ChoiceField(
        choices=[(ACTION_COMPARE, _("Compare and merge")), (ACTION_DISMISS, _("Not duplicates"))],
        initial=ACTION_COMPARE,
    )

    def __init__(self, *args, current_pk: int, candidate_pks: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.current_pk = current_pk
        candidates = [(pk, str(pk)) for pk in candidate_pks]
        self.fields["priority"].choices = [(current_pk, str(current_pk))] + candidates
        self.fields["include"].choices = candidates
        self.fields["shown"].choices = candidates
        self.fields["priority"].initial = current_pk
        self.fields["include"].initial = list(candidate_pks)
        self.fields["shown"].initial = list(candidate_pks)
        self.fields["shown"].error_messages["invalid_choice"] = _(
            "The list of duplicates has changed since it was opened; here it is again."
        )

    def clean(self):
        cleaned = super().clean()
        shown = set(cleaned.get("shown") or [])
        include = set(cleaned.get("include") or [])
        priority = cleaned.get("priority")
        action = cleaned.get("action")
        if include - shown:
            raise forms.ValidationError(_("Only the records in the list can be merged."), code="not_shown")
        if priority is not None and priority != self.current_pk and priority not in include:
            self.add_error("priority", _("The priority record must be ticked."))
        if action == self.ACTION_COMPARE and not include:
            raise forms.ValidationError(
                _("Tick at least one record to merge with the current one."), code="nothing_ticked"
            )
        if action == self.ACTION_DISMISS and not shown - include:
            raise forms.ValidationError(
                _("Untick the records that are not duplicates of the current one first."), code="nothing_unticked"
            )
        return cleaned

    @property
    def merged_pks(self) -> list[int]:
        """The current record and the ticked ones, the priority first."""
        priority = self.cleaned_data["priority"]
        others = [self.current_pk] + [pk for pk in self.cleaned_data["include"] if pk != self.current_pk]
        return [priority] + [pk for pk in others if pk != priority]

    @property
    def unticked_pks(self) -> list[int]:
        include = set(self.cleaned_data.get("include") or [])
        return [pk for pk in self.cleaned_data.get("shown") or [] if pk not in include]


@dataclass
class ChoiceCell:
    """A cell of the compare table as the template draws it: its value, radio name and whether it is chosen."""

    cell: Cell
    input_name: str
    checked: bool
    selectable: bool


@dataclass
class ChoiceRow:
    row: CompareRow
    cells: list[ChoiceCell]
    chosen_display: str
    errors: list[str]


class MergeForm(forms.Form):
    """The compare screen: one radio group per field, the records and their versions as the screen saw them."""

    priority = forms.IntegerField(widget=forms.HiddenInput)
    records = forms.TypedMultipleChoiceField(coerce=int, widget=forms.MultipleHiddenInput)
    # Unticked on the list: stored as not duplicates only when this merge is confirmed (and runs).
    left_out = forms.TypedMultipleChoiceField(coerce=int, widget=forms.MultipleHiddenInput, required=False)

    def __init__(self, *args, table: CompareTable, left_out: list[int] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.table = table
        pks = [record.pk for record in table.records]
        left_out = [pk for pk in left_out if pk not in pks]
        self.fields["left_out"].choices = [(pk, str(pk)) for pk in left_out]
        self.fields["left_out"].initial = left_out
        self.fields["records"].choices = [(pk, str(pk)) for pk in pks]
        self.fields["records"].initial = pks
        self.fields["priority"].initial = table.priority.pk
        for row in table.rows:
            if not row.choosable or not row.selectable_pks:
                continue
            selectable = set(row.selectable_pks)
            self.fields[self.choice_name(row.name)] = forms.TypedChoiceField(
                label=row.label,
                coerce=int,
                choices=[(cell.record_pk, cell.display) for cell in row.cells if cell.record_pk in selectable],
                initial=row.chosen_pk,
                widget=forms.RadioSelect,
            )
        for record in table.records:
            self.fields[self.expected_name(record.pk)] = forms.CharField(
                widget=forms.HiddenInput, initial=table.expected[record.pk]
            )

    @staticmethod
    def choice_name(field_name: str) -> str:
        return f"choice_{field_name}"

    @staticmethod
    def expected_name(pk) -> str:
        return f"expected_{pk}"

    def clean_priority(self):
        priority = self.cleaned_data["priority"]
        if priority != self.table.priority.pk:
            raise forms.ValidationError(_("The priority record changed; check the table again."))
        return priority

    def clean(self):
        cleaned = super().clean()
        expected: dict[int, datetime] = {}
        for record in self.table.records:
            name = self.expected_name(record.pk)
            raw = cleaned.get(name)
            if not raw:
                continue  # a missing version is reported on its field (required)
            try:
                parsed = parse_datetime(raw)
            except ValueError:
                parsed = None
            if parsed is None:
                self.add_error(None, _("The screen sent an unreadable record version; reload it."))
                continue
            expected[record.pk] = parsed
        self.expected_versions = expected
        return cleaned

    def expected_raw(self) -> dict[str, str]:
        """Return {record id: updated_at (ISO) as the screen showed it}, for the merge job's stale check."""
        return {str(record.pk): self.cleaned_data[self.expected_name(record.pk)] for record in self.table.records}

    def chosen(self) -> dict[str, int]:
        """Return {field name: pk of the record whose value the survivor keeps}."""
        if self.is_bound and hasattr(self, "cleaned_data"):
            return {
                row.name: self.cleaned_data[self.choice_name(row.name)]
                for row in self.table.rows
                if self.choice_name(row.name) in self.cleaned_data
            }
        return self.table.default_choices()

    def choice_rows(self) -> list[ChoiceRow]:
        """Return the table's rows with each cell's radio state, for the template."""
        result = []
        for row in self.table.rows:
            name = self.choice_name(row.name)
            selected = row.chosen_pk
            if self.is_bound and name in self.fields:
                raw = self.data.get(name)
                if raw is not None and str(raw).isdigit():
                    selected = int(raw)
            cells = [
                ChoiceCell(
                    cell=cell,
                    input_name=name,
                    checked=cell.record_pk == selected,
                    selectable=name in self.fields and cell.record_pk in row.selectable_pks,
                )
                for cell in row.cells
            ]
            chosen = next((c.cell.display for c in cells if c.checked), row.cells[0].display)
            errors = list(self.errors.get(name, [])) if self.is_bound else []
            result.append(ChoiceRow(row=row, cells=cells, chosen_display=chosen, errors=errors))
        return result
