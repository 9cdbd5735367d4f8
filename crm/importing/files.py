"""Open an uploaded CSV or XLSX file as untrusted input: limits checked before parsing, the separator detected.

A file's size is checked before it is read; an XLSX's unpacked size and its sheet's declared dimension before
a row is parsed (a 1.6 kB workbook can declare A1:XFD1048576, and openpyxl pads every row to the declared
width), and rows are streamed with openpyxl's read-only reader, stopping past the row limit. The limits are
settings (``IMPORT_MAX_FILE_BYTES``, ``IMPORT_MAX_UNPACKED_BYTES``, ``IMPORT_MAX_ROWS``, ``IMPORT_MAX_COLUMNS``).
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

#: The separators a CSV file may use, in the order a tie is decided.
DELIMITERS = (",", ";", "\t")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (too big, not UTF-8, no header, broken CSV or XLSX...)."""


@dataclass(frozen=True)
class FileLimits:
    max_bytes: int
    max_unpacked_bytes: int
    max_rows: int
    max_columns: int

    @classmethod
    def from_settings(cls) -> FileLimits:
        return cls(
            max_bytes=settings.IMPORT_MAX_FILE_BYTES,
            max_unpacked_bytes=settings.IMPORT_MAX_UNPACKED_BYTES,
            max_rows=settings.IMPORT_MAX_ROWS,
            max_columns=settings.IMPORT_MAX_COLUMNS,
        )


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f}"


def check_size(size: int, limits: FileLimits) -> None:
    if size > limits.max_bytes:
        raise ImportFileError(
            _("The file is %(size)s MB; files up to %(max)s MB can be imported.")
            % {"size": _megabytes(size), "max": _megabytes(limits.max_bytes)}
        )


def _too_many_rows(limits: FileLimits) -> ImportFileError:
    return ImportFileError(
        _("The file has more than %(max)s rows; split it into smaller files.") % {"max": f"{limits.max_rows:,}"}
    )


def _too_many_columns(count: int, limits: FileLimits) -> ImportFileError:
    return ImportFileError(
        _("The file has %(count)s columns; at most %(max)s can be imported.")
        % {"count": f"{count:,}", "max": limits.max_columns}
    )


# --- CSV -----------------------------------------------------------------------------------------------------


def decode_text(data: bytes | str) -> str:
    """Return the file's text without a byte order mark; refuse text that is not UTF-8, naming the line."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            _("The file is not UTF-8 text (line %(line)s); save it as “CSV UTF-8” and try again.") % {"line": line}
        ) from exc


def sniff_delimiter(text: str) -> str:
    """Return the separator the header line uses most outside quotes: ',', ';' or a tab (',' on a tie)."""
    header = text.split("\n", 1)[0]
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda delimiter: counts[delimiter])  # max keeps the first of equals


def csv_records(text: str, delimiter: str, limits: FileLimits | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (line, cells) of every record, the header included; refuse broken CSV and too many rows."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    next_line = 1
    count = 0
    try:
        for cells in reader:
            line, next_line = next_line, reader.line_num + 1
            count += 1
            if limits is not None:
                if count > limits.max_rows + 1:  # the header is not a row
                    raise _too_many_rows(limits)
                if len(cells) > limits.max_columns:
                    raise _too_many_columns(len(cells), limits)
            yield line, cells
    except csv.Error as exc:
        raise ImportFileError(
            _("line %(line)s: the file is not valid CSV (%(error)s); nothing was imported.")
            % {"line": reader.line_num, "error": exc}
        ) from exc


def read_csv(data: bytes | str, limits: FileLimits) -> tuple[list[str], list[list[str]]]:
    """Return a CSV file's header and rows, the separator detected, every limit checked."""
    check_size(len(data), limits)
    text = decode_text(data)
    records = [cells for _line, cells in csv_records(text, sniff_delimiter(text), limits)]
    if not records:
        return [], []
    return records[0], [cells for cells in records[1:] if cells]


# --- XLSX ----------------------------------------------------------------------------------------------------


def _open_xlsx(data: bytes, limits: FileLimits):
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    check_size(len(data), limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise ImportFileError(_("The file is not an XLSX workbook.")) from exc
    if unpacked > limits.max_unpacked_bytes:
        raise ImportFileError(
            _("The workbook unpacks to %(size)s MB; workbooks up to %(max)s MB unpacked can be imported.")
            % {"size": _megabytes(unpacked), "max": _megabytes(limits.max_unpacked_bytes)}
        )
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ImportFileError(_("The file is not an XLSX workbook.")) from exc
    sheet = workbook.active
    # The declared dimension (<dimension ref="A1:XFD1048576"/>) is read without parsing a row.
    if (sheet.max_column or 0) > limits.max_columns:
        workbook.close()
        raise _too_many_columns(sheet.max_column, limits)
    if (sheet.max_row or 0) > limits.max_rows + 1:
        workbook.close()
        raise _too_many_rows(limits)
    return workbook, sheet


def xlsx_rows(data: bytes, limits: FileLimits) -> Iterator[list]:
    """Yield the values of the first sheet's rows, the header first, streaming; stop past the row limit.

    Rows are cut at the column limit whatever the sheet declares, and trailing empty cells are dropped.
    """
    workbook, sheet = _open_xlsx(data, limits)
    try:
        # Rows and columns are read up to the limits rather than to the declared dimension, which some writers
        # leave at "A1" (or omit): a file must not lose data to it, nor get past the limits by lying in it.
        width = sheet.max_column if (sheet.max_column or 0) > 1 else limits.max_columns
        rows = sheet.iter_rows(max_col=width, max_row=limits.max_rows + 2, values_only=True)
        for count, values in enumerate(rows, start=1):
            if count > limits.max_rows + 1:
                raise _too_many_rows(limits)
            values = list(values)
            while values and values[-1] is None:
                values.pop()
            yield values
    finally:
        workbook.close()


def read_xlsx(data: bytes, limits: FileLimits) -> tuple[list, list[list]]:
    """Return the first sheet's header and its non-empty rows, every limit checked."""
    header: list = []
    rows: list[list] = []
    for index, values in enumerate(xlsx_rows(data, limits)):
        if index == 0:
            header = values
        elif any(value not in (None, "") for value in values):
            rows.append(values)
    return header, rows


def read_header(data: bytes | str, *, xlsx: bool, limits: FileLimits) -> list:
    """Return a file's first row only, checking the limits that can be checked before parsing the rest."""
    if xlsx:
        return next(xlsx_rows(data, limits), [])
    check_size(len(data), limits)
    text = decode_text(data)
    return next((cells for _line, cells in csv_records(text, sniff_delimiter(text), limits)), [])
