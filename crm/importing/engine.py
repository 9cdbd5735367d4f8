"""Import customers, companies, leads and orders from CSV files in bulk batches (the `import_csv` command).

Longer than our usual module on purpose: the file loop, the batch writer and the four entities' importers share
the private row and batch types and are read together; the cell rules and the file handling live beside it
(cells.py, files.py). Why the command does not use the admin's resources: see the package's docstring.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import (
    Company, Customer, DuplicatePolicy, Email, ImportBatch, ImportRow, Lead, MessengerHandle, Order, Phone, Pipeline,
    Tag,
)
from dedup import registry
from dedup.db import bulk_insert
from dedup.engine import finder
from dedup.engine.normalize import phone_e164
from dedup.merge.fields import dump_value
from dedup.messages import Message
from dedup.signals import records_bulk_saved

from . import cells
from .cells import CellError
from .duplicates import DEFAULT_POLICY, SAME_EXTERNAL_ID, RowMatch, row_match_values, rows_duplicates
from .files import ImportFileError, csv_records, decode_text, sniff_delimiter

# Rows written per transaction. Large enough that the per-query and per-commit costs (an fsync on SQLite)
# are spread over many rows, which is what makes 100,000 rows fit in a minute; small enough that a batch
# holds the write lock briefly (the web process keeps working during an import), memory stays flat, and a
# batch the database refuses is cheap to replay row by row to find the culprit.
IMPORT_BATCH_SIZE = 2000

# A merged record may have been merged again; follow at most this many hops to the survivor.
_MAX_MERGE_HOPS = 5

# custom_fields JSON nested deeper than this is refused: the database, the admin and the exports all walk it
# recursively, and a customer's custom fields are a flat list of values in practice.
CUSTOM_FIELDS_MAX_DEPTH = 20


_TAG_LENGTH = Tag._meta.get_field("name").max_length
_PHONE_LENGTH = Phone._meta.get_field("number").max_length
_EMAIL_LENGTH = Email._meta.get_field("address").max_length
_HANDLE_LENGTH = MessengerHandle._meta.get_field("username").max_length


@dataclass
class RowError:
    """A skipped row: its line in the file and what is wrong with it."""

    line: int
    messages: list[str]

    def __str__(self) -> str:
        return _("line %(line)s: %(problems)s") % {"line": self.line, "problems": "; ".join(self.messages)}


@dataclass
class ImportReport:
    """What an import did: rows read, records created and updated, rows skipped and why."""

    entity: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    companies_created: int = 0
    skipped: list[RowError] = field(default_factory=list)
    seconds: float = 0.0
    #: True when the import was all or nothing (``atomic=True``) and a bad row made it write nothing.
    rolled_back: bool = False
    #: What was done with rows that duplicate a record (DuplicatePolicy).
    policy: str = DEFAULT_POLICY
    #: Rows created and flagged as possible duplicates, and rows not imported because they duplicate a record.
    flagged: int = 0
    duplicates_skipped: int = 0
    #: The import batch that can undo this import (None when nothing was written).
    batch_id: int | None = None
    #: The rows that met a record (matched, updated, skipped, flagged), in line order, as ImportRow field dicts.
    lines: list[dict] = field(default_factory=list)


ProgressCallback = Callable[[int, int], None]


def records_import_csv(
    *,
    entity: str,
    path: str | Path | None = None,
    file: IO | None = None,
    owner: models.Model | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = IMPORT_BATCH_SIZE,
    atomic: bool = False,
    policy: str | None = None,
    user: models.Model | None = None,
    source: str = ImportBatch.Source.COMMAND,
    file_name: str = "",
) -> ImportReport:
    """Import a CSV file of ``entity`` records; good rows are written even when others are bad.

    Columns named like the model's fields are read into them; ``phone``/``email`` (several values separated
    by ``;``), ``messenger``/``telegram``/``whatsapp``, ``tags`` and ``owner`` (a username) are understood;
    any other column goes into custom fields. A row whose ``external_id`` is already known updates that
    record. ``owner`` is the responsible manager of new records whose row names none. ``progress`` is called
    with (rows done, rows in total) after each batch.

    Not one transaction but one per batch (see IMPORT_BATCH_SIZE): a file of 100,000 rows must not hold the
    database's write lock for a minute. Whatever goes wrong with a row (a cell, a reference, the database, an
    exception nobody foresaw) is reported with its line, and every other row is imported. With ``atomic`` the
    whole file is one transaction, and nothing is written unless every row is good (``report.rolled_back``).

    ``policy`` (DuplicatePolicy) says what a row that duplicates a record by duplicate control's active rules
    does: ``skip``, ``update`` the record (its empty fields filled, contacts and tags united, the rest kept) or
    ``create`` it and flag it (the default). Rows duplicating an earlier row of the file count too. Everything
    is recorded in an ImportBatch (``report.batch_id``), which crm.importing.undo.import_undo takes back.
    """
    policy = policy or DEFAULT_POLICY
    if policy not in DuplicatePolicy.values:
        raise ImportFileError(
            _("Unknown duplicate policy %(policy)r: choose one of %(choices)s.")
            % {"policy": policy, "choices": ", ".join(DuplicatePolicy.values)}
        )
    importer_class = IMPORTERS.get(entity)
    if importer_class is None:
        raise ImportFileError(
            _("Unknown entity %(entity)r: choose one of %(choices)s.")
            % {"entity": entity, "choices": ", ".join(IMPORTERS)}
        )
    started = time.monotonic()
    text = _read_text(path=path, file=file)
    delimiter = sniff_delimiter(text)
    total = sum(1 for _record in csv_records(text, delimiter)) - 1  # a file that is not CSV is refused whole
    records = csv_records(text, delimiter)
    header = next(records, (1, None))[1]
    if not header or not any(title.strip() for title in header):
        raise ImportFileError(_("The file is empty: the first line must name the columns."))

    importer = importer_class(owner=owner, policy=policy)
    columns = importer.map_columns(header)
    importer.prepare()
    report = ImportReport(entity=entity, policy=policy)

    def run() -> None:
        importer.record = ImportBatch.objects.create(
            entity=entity, policy=policy, source=source, file_name=str(file_name or path or "")[:255],
            user=user if getattr(user, "pk", None) else None,
        )
        _import_rows(importer, records, columns, report, progress=progress, total=total, batch_size=batch_size)
        _finish_batch(importer.record, report)

    if atomic:
        # One transaction for the file; each batch below is a savepoint of it, so a refused batch is still
        # replayed row by row to report every bad line before everything is rolled back.
        with transaction.atomic():
            run()
            if report.skipped:
                transaction.set_rollback(True)
                report.rolled_back = True
                report.batch_id = None
    else:
        run()
    report.skipped.sort(key=lambda error: error.line)
    report.lines.sort(key=lambda line: line["line"])
    report.seconds = time.monotonic() - started
    return report


def _finish_batch(batch: ImportBatch, report: ImportReport) -> None:
    """Store the rows that were not imported and the import's figures on its batch."""
    bulk_insert(
        ImportRow,
        [
            {"batch_id": batch.pk, "line": error.line, "action": ImportRow.Action.ERROR, "reasons": error.messages}
            for error in report.skipped
        ],
    )
    batch.rows = report.rows
    batch.created = report.created
    batch.updated = report.updated
    batch.skipped = report.duplicates_skipped + len(report.skipped)
    batch.flagged = report.flagged
    batch.finished_at = timezone.now()
    batch.save(update_fields=["rows", "created", "updated", "skipped", "flagged", "companies", "finished_at"])
    report.batch_id = batch.pk


def _import_rows(importer, records, columns, report, *, progress, total, batch_size) -> None:
    """Parse, check and write the file's rows batch by batch; bad rows go to report.skipped with their line."""
    # Each unique key (external ID, order number) may appear once per file: a second row with the same key
    # is reported rather than silently overwriting the first.
    seen: dict[tuple[str, str], int] = {}
    batch: list[_Row] = []
    for line, values in records:
        report.rows += 1
        if not any(cell.strip() for cell in values):
            continue
        try:
            row = importer.parse(line=line, values=values, columns=columns)
        except Exception as exc:  # noqa: BLE001  (no row may stop the import: it is reported instead)
            row = _Row(line, errors=[_unexpected(exc)])
        if not row.errors:
            for key in importer.unique_keys:
                value = row.values.get(key)
                if not value:
                    continue
                first_line = seen.setdefault((key, value), line)
                if first_line != line:
                    row.errors.append(
                        _("%(column)s: %(value)r is already on line %(first)s")
                        % {"column": key, "value": value, "first": first_line}
                    )
        if row.errors:
            report.skipped.append(RowError(line, row.errors))
            continue
        batch.append(row)
        if len(batch) >= batch_size:
            _write_batch(importer, batch, report)
            batch = []
            if progress:
                progress(report.rows, total)
    if batch:
        _write_batch(importer, batch, report)
    if progress:
        progress(report.rows, total)


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return _("the row is nested too deeply to be read")
    return _("the row could not be imported: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"[:300]}


class _SplitAt(Exception):  # noqa: N818  (not an error: a signal to the batch writer)
    """A row of the batch duplicates an earlier row of it: write the batch in two parts, split before that row."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


def _write_batch(importer: _Importer, rows: list[_Row], report: ImportReport) -> None:
    """Write one batch in its own transaction; if it fails for any reason, replay it row by row.

    A row duplicating an earlier row of the same batch cannot be found in the index before that row is written:
    the batch is rolled back and written in two parts, so that the engine meets the earlier row as a record.
    """
    batch = _Batch(rows)
    try:
        with transaction.atomic():
            importer.write(batch)
    except _SplitAt as split:
        _write_batch(importer, rows[: split.index], report)
        _write_batch(importer, rows[split.index :], report)
        return
    except Exception as exc:  # noqa: BLE001  (a database refusal or any other failure: find the row, go on)
        if len(rows) == 1:
            message = (
                _("the database refused the row: %s") % exc if isinstance(exc, DatabaseError) else _unexpected(exc)
            )
            report.skipped.append(RowError(rows[0].line, [message]))
            return
        for row in rows:
            _write_batch(importer, [row], report)
        return
    report.created += batch.created
    report.updated += batch.updated
    report.companies_created += batch.companies_created
    report.flagged += batch.flagged
    report.duplicates_skipped += batch.duplicates_skipped
    report.lines.extend(line for line in batch.lines if line["action"] != ImportRow.Action.CREATED)
    report.skipped.extend(RowError(row.line, messages) for row, messages in batch.errors.items())


# --- Reading the file ------------------------------------------------------------------------------------


def _read_text(*, path: str | Path | None, file: IO | None) -> str:
    if (path is None) == (file is None):
        raise TypeError("Pass either path or file.")
    if path is not None:
        try:
            data: bytes | str = Path(path).read_bytes()
        except OSError as exc:
            raise ImportFileError(
                _("Cannot read %(path)s: %(error)s") % {"path": path, "error": exc.strerror or exc}
            ) from exc
    else:
        data = file.read()
    return decode_text(data)


# --- Parsing cells (the rules are crm.importing.cells', shared with the admin's import) --------------------


#: A messenger's stored value by its name, alias or label, as cells.parse_handle wants it.
HANDLE_CHANNELS = {
    **{value: value for value in MessengerHandle.Channel.values},
    **{str(label).casefold(): value for value, label in MessengerHandle.Channel.choices},
}


def _field_parser(model_field: models.Field) -> Callable[[str], Any]:
    """Return a function that turns a cell into the field's value or raises CellError."""
    if model_field.choices:
        return cells.choice_parser(model_field.flatchoices)
    if isinstance(model_field, models.DateField):
        return cells.parse_date
    if isinstance(model_field, models.DecimalField):
        return lambda raw: cells.parse_decimal(
            raw, max_digits=model_field.max_digits, decimal_places=model_field.decimal_places
        )
    if isinstance(model_field, models.BooleanField):
        return cells.parse_bool
    if isinstance(model_field, models.CharField):
        return lambda raw: cells.check_length(raw, model_field.max_length)
    raise TypeError(f"No CSV parser for {model_field!r}")


def _json_depth_exceeds(data: Any, limit: int) -> bool:
    """Return whether JSON data nests deeper than ``limit`` (walked with a stack, not recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True)
class _Column:
    index: int
    key: str  # a field or special column name, or the header as typed for a custom field
    custom: bool = False


@dataclass(eq=False)
class _Row:
    """One parsed CSV row, before any database lookup."""

    line: int
    values: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    owner: str = ""
    tags: list[str] = field(default_factory=list)
    phones: list[tuple[str, str]] = field(default_factory=list)  # (as typed, e164 or "")
    emails: list[str] = field(default_factory=list)
    handles: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, username, chat id)
    refs: dict[str, str] = field(default_factory=dict)  # references resolved per batch (company, stage...)
    errors: list[str] = field(default_factory=list)


class _Batch:
    """The rows of one transaction and what became of them."""

    def __init__(self, rows: list[_Row]):
        self.rows = rows
        self.errors: dict[_Row, list[str]] = {}
        self.existing: dict[_Row, models.Model] = {}
        self.links: dict[_Row, dict[str, Any]] = defaultdict(dict)
        self.created = 0
        self.updated = 0
        self.companies_created = 0
        self.flagged = 0
        self.duplicates_skipped = 0
        # Duplicate control's answers: the record each row duplicates; rows that only fill a matched record's
        # empty fields (policy "update"); rows left out as duplicates (policy "skip").
        self.matches: dict[_Row, RowMatch] = {}
        self.fill: set[_Row] = set()
        self.dropped: set[_Row] = set()
        # Undo data of updated records per row, and what the batch did per row (ImportRow field dicts).
        self.changes: dict[_Row, dict] = {}
        self.lines: list[dict] = []
        self.company_pks: list[int] = []

    def fail(self, row: _Row, message: str) -> None:
        self.errors.setdefault(row, []).append(message)

    @property
    def good(self) -> list[_Row]:
        return [row for row in self.rows if row not in self.errors and row not in self.dropped]


# --- Importers -------------------------------------------------------------------------------------------


class _Importer:
    """Reads rows of one entity and writes them in bulk; subclasses add the entity's own columns."""

    model: type[models.Model]
    fields: tuple[str, ...]
    extra_columns: tuple[str, ...] = ()
    aliases: dict[str, str] = {}
    has_contacts = True
    unique_keys: tuple[str, ...] = ("external_id",)

    _common_aliases = {
        "phones": "phone",
        "telephone": "phone",
        "emails": "email",
        "e_mail": "email",
        "tag": "tags",
        "owner_username": "owner",
        "responsible": "owner",
        "messengers": "messenger",
    }

    def __init__(self, *, owner: models.Model | None, policy: str = DEFAULT_POLICY):
        self.default_owner_id = owner.pk if owner is not None else None
        self.policy = policy
        self.spec = registry.for_model(self.model)
        # The ImportBatch rows are recorded in (set by records_import_csv), and the file line that created each
        # record of this import, so a duplicate of an earlier row says which line it met.
        self.record: ImportBatch | None = None
        self.created_lines: dict[int, int] = {}
        self.parsers = {name: _field_parser(self.model._meta.get_field(name)) for name in self.fields}
        self.known = set(self.fields) | set(self.extra_columns) | {"owner", "tags"}
        if self.has_contacts:
            self.known |= {"phone", "email", "messenger", "telegram", "whatsapp"}
        self.user_ids: dict[str, int] = {}
        self.content_type = ContentType.objects.get_for_model(self.model)

    # Reading

    def map_columns(self, header: list[str]) -> list[_Column]:
        columns: list[_Column] = []
        taken: set[str] = set()
        for index, title in enumerate(header):
            title = title.strip()
            key = cells.normalise_header(title)
            key = self.aliases.get(key) or self._common_aliases.get(key) or key
            if key in self.known or key == "custom_fields":
                column = _Column(index, key)
            else:
                column = _Column(index, title or _("column %(number)s") % {"number": index + 1}, custom=True)
            if column.key in taken:
                raise ImportFileError(_("The column %(column)r appears twice in the header.") % {"column": title})
            taken.add(column.key)
            columns.append(column)
        return columns

    def prepare(self) -> None:
        """Load what every batch needs (pipelines...); raise ImportFileError when the import cannot start."""

    def parse(self, *, line: int, values: list[str], columns: list[_Column]) -> _Row:
        row = _Row(line)
        extra = values[len(columns):]
        if any(cell.strip() for cell in extra):
            row.errors.append(
                _("%(count)s values but the header has %(columns)s columns")
                % {"count": len(values), "columns": len(columns)}
            )
            return row
        if any("\x00" in cell for cell in values):
            row.errors.append(_("the row contains a NUL character"))
            return row
        given: dict[str, str] = {}
        for column in columns:
            raw = cells.cell_text(values[column.index]) if column.index < len(values) else ""
            if not raw:
                continue
            if column.custom:
                row.custom[column.key] = raw
            else:
                given[column.key] = raw
        if "custom_fields" in given:
            self._parse_custom_json(row, given["custom_fields"])
        for name, parse in self.parsers.items():
            if name in given:
                try:
                    row.values[name] = parse(given[name])
                except CellError as exc:
                    row.errors.append(f"{name}: {exc}")
        row.owner = given.get("owner", "")
        try:
            row.tags = cells.parse_tags(given.get("tags", ""), max_length=_TAG_LENGTH)
        except CellError as exc:
            row.errors.append(f"tags: {exc}")
        if self.has_contacts:
            self._parse_contacts(row, given)
        self.parse_extra(row, given)
        return row

    def _parse_custom_json(self, row: _Row, raw: str) -> None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            row.errors.append(_("custom_fields: not a JSON object"))
            return
        if _json_depth_exceeds(data, CUSTOM_FIELDS_MAX_DEPTH):
            row.errors.append(
                _("custom_fields: nested deeper than %(max)s levels") % {"max": CUSTOM_FIELDS_MAX_DEPTH}
            )
            return
        # Columns of their own win over the same key inside the JSON column.
        row.custom = {**data, **row.custom}

    def _parse_contacts(self, row: _Row, given: dict[str, str]) -> None:
        try:
            row.phones = cells.parse_phones(given.get("phone", ""), max_length=_PHONE_LENGTH)
        except CellError as exc:
            row.errors.append(f"phone: {exc}")
        try:
            row.emails = cells.parse_emails(given.get("email", ""), max_length=_EMAIL_LENGTH)
        except CellError as exc:
            row.errors.append(f"email: {exc}")
        seen: set[str] = set()
        for column, channel in (
            ("messenger", MessengerHandle.Channel.TELEGRAM),
            ("telegram", MessengerHandle.Channel.TELEGRAM),
            ("whatsapp", MessengerHandle.Channel.WHATSAPP),
        ):
            try:
                handles = cells.parse_handles(
                    given.get(column, ""), channels=HANDLE_CHANNELS, default_channel=channel,
                    max_length=_HANDLE_LENGTH,
                )
            except CellError as exc:
                row.errors.append(f"{column}: {exc}")
                continue
            for handle in handles:
                if handle.key() not in seen:
                    seen.add(handle.key())
                    row.handles.append((handle.channel, handle.username, handle.chat_id))

    def parse_extra(self, row: _Row, given: dict[str, str]) -> None:
        """Read the entity's own columns into row.refs (resolved against the database per batch)."""

    # Writing

    def write(self, batch: _Batch) -> None:
        """Create and update the batch's records with their contacts and tags, then tell duplicate control."""
        self._resolve_owners(batch)
        self._find_existing(batch)
        self.resolve(batch)
        self._match_duplicates(batch)
        now = timezone.now()
        created: list[tuple[_Row, dict[str, Any]]] = []
        updated: list[tuple[_Row, models.Model]] = []
        update_fields: set[str] = set()
        for row in batch.good:
            links = batch.links[row]
            owner_id = self.user_ids.get(row.owner)
            instance = batch.existing.get(row)
            if instance is None:
                values = {**row.values, **links, "custom_fields": dict(row.custom)}
                values["owner_id"] = owner_id or self.default_owner_id
                values.update(self.derive(values))
                created.append((row, values))
                continue
            # The external ID found the record; it is never rewritten (it may belong to an absorbed record).
            values = {name: value for name, value in row.values.items() if name != "external_id"}
            values.update(links)
            if owner_id:
                values["owner_id"] = owner_id
            if row.custom:
                values["custom_fields"] = {**(instance.custom_fields or {}), **row.custom}
            if row in batch.fill:
                # A duplicate updated by policy: only what the record lacks is filled; the rest is kept.
                values = self._fill_only(instance, values, row)
            before = self._dump(instance, values)
            for name, value in values.items():
                setattr(instance, name, value)
            for name, value in self.derive(vars(instance)).items():
                setattr(instance, name, value)
            after = self._dump(instance, before)
            batch.changes[row] = {
                "fields": {name: {"before": before[name], "after": after[name]} for name in before
                           if before[name] != after[name]},
            }
            update_fields.update(values)
            updated.append((row, instance))

        created_pks = bulk_insert(self.model, [values for _row, values in created])
        if updated:
            instances = list({instance.pk: instance for _row, instance in updated}.values())
            for instance in instances:
                instance.updated_at = now
            names = {model_field.attname: model_field.name for model_field in self.model._meta.concrete_fields}
            fields = {names[attname] for attname in update_fields} | {"updated_at", *self.derived_fields}
            self.model.objects.bulk_update(instances, sorted(fields))
        saved = [(row, pk) for (row, _values), pk in zip(created, created_pks, strict=True)]
        saved += [(row, instance.pk) for row, instance in updated]
        if self.has_contacts:
            self._save_contacts(saved, created_count=len(created), batch=batch)
        self._save_tags(saved, created_count=len(created), batch=batch)
        batch.created, batch.updated = len(created), len(updated)
        pks = list(dict.fromkeys(pk for _row, pk in saved))
        if pks:
            # Bulk writes skip post_save; this keeps the duplicate index current.
            records_bulk_saved.send(sender=self.model, model=self.model, pks=pks, created=not updated)
        if created_pks:
            self._check_within_batch(batch, saved[: len(created)])
        self._record_lines(batch, saved[: len(created)], updated)

    # Duplicates

    def match_values(self, row: _Row, batch: _Batch) -> dict[str, list[str]]:
        """Return the row as duplicate control's {match field: [values]}."""
        related = {
            "phones": [number for number, _e164 in row.phones],
            "emails": row.emails,
            "messengers": [
                f"{channel}:@{username}" if username else f"{channel}:#{chat_id}"
                for channel, username, chat_id in row.handles
            ],
        }
        return row_match_values(self.spec, values=row.values, related=related)

    def match_stage(self, row: _Row, batch: _Batch):
        """Return the stage a new record of this row would be in (leads), which scopes the rules; else None."""
        return None

    def _match_duplicates(self, batch: _Batch) -> None:
        """Ask duplicate control about each new row; skip, update or flag a duplicate as the policy says."""
        if self.spec is None:
            return
        targets: dict[int, models.Model] = {instance.pk: instance for instance in batch.existing.values()}
        rows = [row for row in batch.good if row not in batch.existing]
        found = rows_duplicates(
            self.spec.key, [(self.match_values(row, batch), self.match_stage(row, batch)) for row in rows]
        )
        for row, match in zip(rows, found, strict=True):
            if match is None:
                continue
            batch.matches[row] = match
            if self.policy == DuplicatePolicy.SKIP:
                batch.dropped.add(row)
                batch.duplicates_skipped += 1
                batch.lines.append(self._line(row, ImportRow.Action.SKIPPED, None, match))
            elif self.policy == DuplicatePolicy.UPDATE:
                # Two rows of a batch meeting one record update the same instance, one after the other.
                batch.existing[row] = targets.setdefault(match.pk, match.record)
                batch.fill.add(row)

    def _check_within_batch(self, batch: _Batch, created: list[tuple[_Row, int]]) -> None:
        """Raise _SplitAt when a row created here duplicates an earlier row created in the same batch."""
        index_of = {pk: batch.rows.index(row) for row, pk in created}
        later = [
            index_of[pk]
            for pk, partners in finder.duplicate_partners(self.model, list(index_of)).items()
            if any(index_of.get(partner, index_of[pk]) < index_of[pk] for partner in partners)
        ]
        if later:
            raise _SplitAt(min(later))

    def _line(self, row: _Row, action: str, record_id: int | None, match: RowMatch | None) -> dict:
        line = {"line": row.line, "action": action, "record_id": record_id, "match_id": None, "match_line": None,
                "reasons": [], "changes": {}}
        if match is not None:
            line.update(match_id=match.pk, match_line=self.created_lines.get(match.pk), reasons=match.reasons)
        return line

    def _record_lines(self, batch: _Batch, created: list[tuple[_Row, int]], updated) -> None:
        """Say per row what was done and why, and store it with the undo data in the import's batch."""
        for row, pk in created:
            self.created_lines[pk] = row.line
            match = batch.matches.get(row)
            if match is not None:
                batch.flagged += 1
            batch.lines.append(
                self._line(row, ImportRow.Action.FLAGGED if match else ImportRow.Action.CREATED, pk, match)
            )
        for row, instance in updated:
            match = batch.matches.get(row) or RowMatch(
                record=instance,
                reasons=[Message(SAME_EXTERNAL_ID, value=row.values.get("external_id", "")).stored()]
                if row.values.get("external_id") else [],
            )
            line = self._line(row, ImportRow.Action.UPDATED, instance.pk, match)
            line["changes"] = batch.changes.get(row, {})
            batch.lines.append(line)
        if self.record is not None:
            bulk_insert(ImportRow, [{"batch_id": self.record.pk, **line} for line in batch.lines])
            if batch.companies_created:
                self.record.companies.extend(batch.company_pks)

    def _fill_only(self, instance: models.Model, values: dict[str, Any], row: _Row) -> dict[str, Any]:
        kept = {}
        for name, value in values.items():
            if name == "custom_fields":
                current = instance.custom_fields or {}
                value = {**row.custom, **current}
                if value != current:
                    kept[name] = value
            elif _is_empty(getattr(instance, name, None)) and not _is_empty(value):
                kept[name] = value
        return kept

    def _dump(self, instance: models.Model, names) -> dict[str, Any]:
        """Return {field name: JSON value} of these fields (names or attnames) and the derived ones."""
        by_name = {**{f.attname: f for f in self.model._meta.concrete_fields},
                   **{f.name: f for f in self.model._meta.concrete_fields}}
        dumped = {}
        for name in [*names, *self.derived_fields]:
            model_field = by_name[name]
            dumped[model_field.name] = dump_value(model_field, getattr(instance, model_field.attname))
        return dumped

    derived_fields: tuple[str, ...] = ()

    def derive(self, values: dict[str, Any]) -> dict[str, Any]:
        """Return what save() would have computed from these values (bulk writes skip save())."""
        return {}

    def resolve(self, batch: _Batch) -> None:
        """Resolve the entity's references for the batch in a constant number of queries."""

    def _resolve_owners(self, batch: _Batch) -> None:
        wanted = {row.owner for row in batch.rows if row.owner} - self.user_ids.keys()
        if wanted:
            user_model = get_user_model()
            username_field = user_model.USERNAME_FIELD
            self.user_ids.update(
                user_model._default_manager.filter(**{f"{username_field}__in": wanted}).values_list(
                    username_field, "pk"
                )
            )
        for row in batch.rows:
            if row.owner and row.owner not in self.user_ids:
                batch.fail(row, _("owner: there is no user %(username)r") % {"username": row.owner})

    def _find_existing(self, batch: _Batch) -> None:
        external_ids = {row.values["external_id"] for row in batch.rows if row.values.get("external_id")}
        if not external_ids:
            return
        found = _follow_merges(
            self.model, {record.external_id: record for record in _by_external_id(self.model, external_ids)}
        )
        for row in batch.rows:
            instance = found.get(row.values.get("external_id"))
            if instance is None:
                continue
            if instance.is_archived:
                batch.fail(row, _("external_id: %(value)r belongs to an archived record") % {
                    "value": row.values["external_id"]})
            else:
                batch.existing[row] = instance

    def _save_contacts(self, saved: list[tuple[_Row, int]], *, created_count: int, batch: _Batch) -> None:
        # Updated records keep their contacts; only values they do not have yet are added.
        updated_ids = [pk for _row, pk in saved[created_count:]]
        self._add_contacts(
            Phone, saved, updated_ids, batch,
            values_of=lambda row: row.phones,
            key_of=lambda number, e164: e164 or number,
            build=lambda number, e164: {"number": number, "e164": e164},
            stored_fields=("number", "e164"),
        )
        self._add_contacts(
            Email, saved, updated_ids, batch,
            values_of=lambda row: [(address,) for address in row.emails],
            key_of=lambda address: address.lower(),
            build=lambda address: {"address": address},
            stored_fields=("address",),
        )
        self._add_contacts(
            MessengerHandle, saved, updated_ids, batch,
            values_of=lambda row: row.handles,
            key_of=lambda channel, username, chat_id: (channel, username.lower(), chat_id),
            build=lambda channel, username, chat_id: {"channel": channel, "username": username, "chat_id": chat_id},
            stored_fields=("channel", "username", "chat_id"),
        )

    def _add_contacts(self, model, saved, updated_ids, batch, *, values_of, key_of, build, stored_fields) -> None:
        """Insert the contact rows of one kind; the first of a record that has none becomes its primary one.

        The rows added to records that existed are noted in the batch's changes, for the import's undo.
        """
        if not any(values_of(row) for row, _pk in saved):
            return
        known: dict[int, set] = defaultdict(set)
        if updated_ids:
            for object_id, *stored in model.objects.filter(
                content_type=self.content_type, object_id__in=updated_ids
            ).values_list("object_id", *stored_fields):
                known[object_id].add(key_of(*stored))
        content_type_id = self.content_type.pk
        new_rows = []
        owners: list[_Row] = []
        updated = set(updated_ids)
        for row, pk in saved:
            seen = known[pk]
            primary = not seen
            for value in values_of(row):
                key = key_of(*value)
                if key in seen:
                    continue
                seen.add(key)
                new_rows.append(
                    {"content_type_id": content_type_id, "object_id": pk, "is_primary": primary, **build(*value)}
                )
                owners.append(row if pk in updated else None)
                primary = False
        label = model._meta.label_lower
        for row, contact_pk in zip(owners, bulk_insert(model, new_rows), strict=True):
            if row is not None:
                batch.changes.setdefault(row, {}).setdefault("added", {}).setdefault(label, []).append(contact_pk)

    def _save_tags(self, saved: list[tuple[_Row, int]], *, created_count: int, batch: _Batch) -> None:
        names = {name for row, _pk in saved for name in row.tags}
        if not names:
            return
        tag_ids = dict(Tag.objects.filter(name__in=names).values_list("name", "pk"))
        missing = names - tag_ids.keys()
        if missing:
            Tag.objects.bulk_create([Tag(name=name) for name in sorted(missing)], ignore_conflicts=True)
            tag_ids.update(Tag.objects.filter(name__in=missing).values_list("name", "pk"))
        relation = self.model._meta.get_field("tags")
        source, target = f"{relation.m2m_field_name()}_id", f"{relation.m2m_reverse_field_name()}_id"
        updated = saved[created_count:]
        if updated:
            # The tags an updated record did not have are noted for the import's undo.
            had = set(
                relation.remote_field.through.objects.filter(**{f"{source}__in": [pk for _row, pk in updated]})
                .values_list(source, target)
            )
            for row, pk in updated:
                added = [tag_ids[name] for name in row.tags if (pk, tag_ids[name]) not in had]
                had.update((pk, tag) for tag in added)
                if added:
                    batch.changes.setdefault(row, {})["tags"] = added
        bulk_insert(
            relation.remote_field.through,
            [{source: pk, target: tag_ids[name]} for row, pk in saved for name in row.tags],
            ignore_conflicts=True,  # an updated record may have the tag already
        )


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _by_external_id(model: type[models.Model], external_ids: set[str]) -> models.QuerySet:
    # The unique index on external_id is partial (WHERE external_id <> ''): the database uses it only when the
    # query says so too. Without it every batch scans the whole table, and a big import slows to a crawl.
    return model.objects.filter(external_id__in=external_ids).exclude(external_id="").order_by()


def _follow_merges(model: type[models.Model], found: dict[str, models.Model]) -> dict[str, models.Model]:
    """Replace records absorbed by a merge with their survivors (one query per hop, not per record)."""
    for _hop in range(_MAX_MERGE_HOPS):
        absorbed = {key: obj for key, obj in found.items() if obj.is_archived and obj.merged_into_id}
        if not absorbed:
            break
        survivors = model.objects.in_bulk({obj.merged_into_id for obj in absorbed.values()})
        progressed = False
        for key, obj in absorbed.items():
            survivor = survivors.get(obj.merged_into_id)
            if survivor is not None:
                found[key] = survivor
                progressed = True
        if not progressed:
            break
    return found


class CustomerImporter(_Importer):
    model = Customer
    fields = (
        "external_id", "first_name", "last_name", "middle_name", "position", "birthday", "source",
        "exclude_from_repeat_sales",
    )
    extra_columns = ("company_name",)
    aliases = {"company": "company_name", "firstname": "first_name", "lastname": "last_name",
               "middlename": "middle_name", "surname": "last_name"}

    def parse_extra(self, row: _Row, given: dict[str, str]) -> None:
        name = given.get("company_name", "")
        if len(name) > Company._meta.get_field("name").max_length:
            row.errors.append(_("company_name: longer than 255 characters"))
        elif name:
            row.refs["company_name"] = name

    def match_values(self, row: _Row, batch: _Batch) -> dict[str, list[str]]:
        values = super().match_values(row, batch)
        if row.refs.get("company_name"):
            values["company_name"] = [row.refs["company_name"]]
        return values

    def resolve(self, batch: _Batch) -> None:
        """Link customers to the company with exactly that name, creating the companies that are missing."""
        rows = [row for row in batch.good if "company_name" in row.refs]
        names = {row.refs["company_name"] for row in rows}
        if not names:
            return
        company_ids: dict[str, int] = {}
        for name, pk in (
            Company.objects.filter(name__in=names, is_archived=False).order_by("-pk").values_list("name", "pk")
        ):
            company_ids[name] = pk  # ordered newest first, so the oldest company of a name wins
        missing = sorted(names - company_ids.keys())
        if missing:
            pks = bulk_insert(Company, [{"name": name, "owner_id": self.default_owner_id} for name in missing])
            company_ids.update(zip(missing, pks, strict=True))
            batch.companies_created = len(pks)
            batch.company_pks = pks
            records_bulk_saved.send(sender=Company, model=Company, pks=pks, created=True)
        for row in rows:
            batch.links[row]["company_id"] = company_ids[row.refs["company_name"]]


class CompanyImporter(_Importer):
    model = Company
    fields = ("external_id", "name", "tax_id", "website")
    aliases = {"company": "name", "company_name": "name", "inn": "tax_id", "vat": "tax_id", "site": "website"}

    def resolve(self, batch: _Batch) -> None:
        for row in batch.good:
            if row not in batch.existing and not row.values.get("name"):
                batch.fail(row, _("name: a new company needs a name"))


class LeadImporter(_Importer):
    model = Lead
    fields = (
        "external_id", "title", "channel", "first_name", "last_name", "middle_name", "company_name", "source",
        "amount",
    )
    extra_columns = ("pipeline", "stage")
    aliases = {"firstname": "first_name", "lastname": "last_name", "middlename": "middle_name",
               "company": "company_name"}

    def prepare(self) -> None:
        self.pipelines: dict[str, tuple[Pipeline, list]] = {}
        self.default_pipeline: Pipeline | None = None
        for pipeline in Pipeline.objects.filter(kind=Pipeline.Kind.LEAD).prefetch_related("stages"):
            self.pipelines.setdefault(pipeline.name.lower(), (pipeline, list(pipeline.stages.all())))
            self.default_pipeline = self.default_pipeline or pipeline
        if self.default_pipeline is None:
            raise ImportFileError(
                _("There is no lead pipeline yet: create one in the admin (or run seed_demo) and import again.")
            )

    def parse_extra(self, row: _Row, given: dict[str, str]) -> None:
        for name in ("pipeline", "stage"):
            if given.get(name):
                row.refs[name] = given[name]

    def resolve(self, batch: _Batch) -> None:
        for row in batch.good:
            existing = batch.existing.get(row)
            if "pipeline" in row.refs:
                entry = self.pipelines.get(row.refs["pipeline"].lower())
                if entry is None:
                    batch.fail(row, _("pipeline: there is no lead pipeline %(name)r") % {"name": row.refs["pipeline"]})
                    continue
            elif existing is not None:
                entry = self._entry_of(existing.pipeline_id)
            else:
                entry = self._entry_of(self.default_pipeline.pk)
            pipeline, stages = entry
            if "stage" in row.refs:
                stage = next((s for s in stages if s.name.lower() == row.refs["stage"].lower()), None)
                if stage is None:
                    batch.fail(row, _("stage: the pipeline %(pipeline)r has no stage %(stage)r") % {
                        "pipeline": pipeline.name, "stage": row.refs["stage"]})
                    continue
            elif existing is not None and "pipeline" not in row.refs:
                stage = None  # keep the lead where it is
            else:
                stage = next((s for s in stages if s.semantic == s.Semantic.OPEN), None)
                if stage is None:
                    batch.fail(row, _("stage: the pipeline %(pipeline)r has no open stage") % {
                        "pipeline": pipeline.name})
                    continue
            if stage is not None:
                batch.links[row].update(pipeline_id=pipeline.pk, stage_id=stage.pk)
            if existing is None and not row.values.get("title"):
                title = self._title_for(row)
                if not title:
                    batch.fail(row, _("title: empty, and there is no name, company or contact to name the lead by"))
                    continue
                row.values["title"] = title

    def match_stage(self, row: _Row, batch: _Batch):
        stage_id = batch.links[row].get("stage_id")
        return next((stage for _pipeline, stages in self.pipelines.values() for stage in stages
                     if stage.pk == stage_id), None)

    def _entry_of(self, pipeline_id: int) -> tuple[Pipeline, list]:
        return next(entry for entry in self.pipelines.values() if entry[0].pk == pipeline_id)

    @staticmethod
    def _title_for(row: _Row) -> str:
        name = " ".join(row.values[part] for part in ("first_name", "last_name") if row.values.get(part))
        contact = (
            name
            or row.values.get("company_name")
            or (row.emails[0] if row.emails else "")
            or (row.phones[0][0] if row.phones else "")
            or next((f"@{username}" if username else chat_id for _channel, username, chat_id in row.handles), "")
        )
        return contact[: Lead._meta.get_field("title").max_length]


class OrderImporter(_Importer):
    model = Order
    fields = ("external_id", "number", "status", "total", "email", "phone")
    extra_columns = ("customer_external_id", "customer_email")
    aliases = {"order_number": "number", "amount": "total", "sum": "total"}
    has_contacts = False
    unique_keys = ("external_id", "number")
    derived_fields = ("phone_e164",)

    def parse_extra(self, row: _Row, given: dict[str, str]) -> None:
        for name in ("customer_external_id", "customer_email"):
            if given.get(name):
                row.refs[name] = given[name]

    def derive(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"phone_e164": phone_e164(values.get("phone") or "") or ""}

    def _find_existing(self, batch: _Batch) -> None:
        super()._find_existing(batch)
        numbers = {row.values["number"] for row in batch.rows if row.values.get("number")}
        by_number = {order.number: order for order in Order.objects.filter(number__in=numbers)} if numbers else {}
        for row in batch.good:
            number = row.values.get("number")
            holder = by_number.get(number)
            existing = batch.existing.get(row)
            if existing is not None:
                if holder is not None and holder.pk != existing.pk:
                    batch.fail(row, _("number: %(number)r belongs to another order") % {"number": number})
            elif holder is not None:
                external_id = row.values.get("external_id", "")
                if external_id and holder.external_id and holder.external_id != external_id:
                    batch.fail(row, _("number: %(number)r belongs to the order with external_id %(other)r") % {
                        "number": number, "other": holder.external_id})
                elif holder.is_archived:
                    batch.fail(row, _("number: %(number)r belongs to an archived order") % {"number": number})
                else:
                    # Matched by number: the order takes the file's external ID, if it had none.
                    if external_id:
                        batch.links[row]["external_id"] = external_id
                    batch.existing[row] = holder
            elif not number:
                batch.fail(row, _("number: a new order needs a number"))

    def resolve(self, batch: _Batch) -> None:
        """Link orders to customers by customer_external_id, customer_email or, failing both, the order's email."""
        rows = batch.good
        external_ids = {row.refs["customer_external_id"] for row in rows if "customer_external_id" in row.refs}
        by_external_id = {}
        if external_ids:
            by_external_id = _follow_merges(
                Customer, {customer.external_id: customer for customer in _by_external_id(Customer, external_ids)}
            )
        emails = {
            (row.refs.get("customer_email") or row.values.get("email", "")).lower()
            for row in rows
            if "customer_external_id" not in row.refs
        } - {""}
        by_email: dict[str, int] = {}
        if emails:
            pairs = list(
                Email.objects.filter(content_type=ContentType.objects.get_for_model(Customer))
                .annotate(address_lower=Lower("address"))
                .filter(address_lower__in=emails)
                .values_list("address_lower", "object_id")
            )
            live = set(
                Customer.objects.filter(pk__in={pk for _address, pk in pairs}, is_archived=False).values_list(
                    "pk", flat=True)
            )
            for address, pk in sorted(pairs, key=lambda pair: pair[1]):
                if pk in live:
                    by_email.setdefault(address, pk)
        for row in rows:
            if "customer_external_id" in row.refs:
                customer = by_external_id.get(row.refs["customer_external_id"])
                if customer is None or customer.is_archived:
                    batch.fail(row, _("customer_external_id: there is no customer %(value)r") % {
                        "value": row.refs["customer_external_id"]})
                    continue
                batch.links[row]["customer_id"] = customer.pk
            elif "customer_email" in row.refs:
                pk = by_email.get(row.refs["customer_email"].lower())
                if pk is None:
                    batch.fail(row, _("customer_email: no customer has the email %(value)r") % {
                        "value": row.refs["customer_email"]})
                    continue
                batch.links[row]["customer_id"] = pk
            elif row.values.get("email") and row.values["email"].lower() in by_email:
                if row not in batch.existing or batch.existing[row].customer_id is None:
                    batch.links[row]["customer_id"] = by_email[row.values["email"].lower()]


def header_aliases(entity: str) -> dict[str, str]:
    """Return what headers people type mean for an entity's file ("telephone" is phone), for both importers."""
    importer = IMPORTERS[entity]
    return {**importer._common_aliases, **importer.aliases}


IMPORTERS: dict[str, type[_Importer]] = {
    "customer": CustomerImporter,
    "company": CompanyImporter,
    "lead": LeadImporter,
    "order": OrderImporter,
}
