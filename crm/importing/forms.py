"""The admin's import form and file formats: limits, separator and header checked before any row is imported."""
from __future__ import annotations

import tablib
from django import forms
from django.utils.translation import gettext as _
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm, ImportForm

from ..models import DuplicatePolicy
from .duplicates import DEFAULT_POLICY

from .files import FileLimits, ImportFileError, check_size, read_csv, read_header, read_xlsx


def dataset_of(header: list, rows: list[list]) -> tablib.Dataset:
    """Return a tablib Dataset of these rows, each padded or cut to the header's width."""
    dataset = tablib.Dataset()
    width = len(header)
    dataset.headers = [value if value is not None else "" for value in header]
    for values in rows:
        values = list(values[:width]) + [None] * (width - len(values))
        dataset.append(values)
    return dataset


class CSV(base_formats.CSV):
    """CSV with the separator detected (``,`` ``;`` or tab, as import_csv does) and the limits checked."""

    def create_dataset(self, in_stream, **kwargs):
        return dataset_of(*read_csv(in_stream, FileLimits.from_settings()))


class XLSX(base_formats.XLSX):
    """XLSX read streaming, refused before parsing when it is too large or declares too many cells."""

    def create_dataset(self, in_stream):
        return dataset_of(*read_xlsx(in_stream, FileLimits.from_settings()))


def duplicates_field(widget=None) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=_("Rows that duplicate a record"),
        choices=DuplicatePolicy.choices,
        initial=DEFAULT_POLICY,
        required=False,  # a form posted without it (an older page, a script) takes the default
        widget=widget,
        help_text=_(
            "Duplicate control's rules decide what a duplicate is (the same check as the card's “Duplicates”). "
            "Update fills only the record's empty fields and adds phones, emails and tags; the rest is kept."
        ),
    )


class DuplicatesConfirmImportForm(ConfirmImportForm):
    """The confirm step carries the duplicate policy chosen with the file."""

    duplicates = duplicates_field(forms.HiddenInput)


class LimitedImportForm(ImportForm):
    """The import form; a file that is too big or names none of the resource's columns is refused here."""

    def __init__(self, formats, resources, **kwargs):
        super().__init__(formats, resources, **kwargs)
        self.fields["duplicates"] = duplicates_field()
        self.format_classes = formats
        self.resource_classes = resources

    def clean(self):
        cleaned_data = super().clean()
        upload = cleaned_data.get("import_file")
        format_index = cleaned_data.get("format")
        if upload is None or format_index in (None, ""):
            return cleaned_data
        limits = FileLimits.from_settings()
        input_format = self.format_classes[int(format_index)]()
        resource_class = self.resource_classes[int(cleaned_data.get("resource") or 0)]
        try:
            check_size(upload.size, limits)  # before reading a byte of it
            data = upload.read()
            upload.seek(0)
            header = read_header(data, xlsx=input_format.is_binary(), limits=limits)
        except ImportFileError as error:
            self.add_error("import_file", str(error))
            return cleaned_data
        if not any(resource_class.column_for_header(title) for title in header if title not in (None, "")):
            self.add_error(
                "import_file",
                _(
                    "No column of this file is one the import knows (the first line must name the columns: "
                    "%(columns)s). If the values are separated by something other than “,” “;” or a tab, save "
                    "the file again as CSV."
                )
                % {"columns": ", ".join(field.column_name for field in resource_class().get_user_visible_fields())},
            )
        return cleaned_data
