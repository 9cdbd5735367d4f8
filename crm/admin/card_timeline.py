"""The history on a record's card: calls, email messages, SMS, chat messages and attachments as read-only tables.

These items are logged, not worked on in the card, so the card shows the latest HISTORY_LATEST of each kind with a
link to each, to all of them (the kind's change list filtered on the record) and to add one, instead of an
editable formset per kind. Seven formsets (their form classes built per request, an empty template row each,
split date-time widgets) were about half the card's CPU time at 1,000,000 customers whatever the record held
(bench/README.md, "The card"), and a record with years of calls rendered every one of them. A table costs one
query per kind and a few rows, however long the history; notes and tasks, which managers edit on the card, stay
inlines (crm/admin/inlines.py, the latest ones).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib.admin.utils import display_for_field
from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, router
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator, capfirst

from ..models import Attachment, Call, ChatMessage, EmailMessage, Note, SmsMessage, Task

# Rows shown per kind: the latest few tell a manager what happened lately; the link opens the rest.
HISTORY_LATEST = 5
# Characters of a long text shown in a cell (a message, a call's result); the item's page shows it whole.
CELL_CHARS = 80

# The history-like kinds and the columns their table shows (the author and the date are added to each).
HISTORY_COLUMNS: dict[type[models.Model], list[str]] = {
    Call: ["direction", "phone", "duration_seconds", "result"],
    EmailMessage: ["direction", "subject", "sender", "recipient"],
    SmsMessage: ["direction", "phone", "text"],
    ChatMessage: ["channel", "direction", "username", "text"],
    Attachment: ["file", "name"],
}
# The kinds edited in inlines on the card, linked from the history for their older rows.
INLINE_KINDS = [Note, Task]
COMMON_COLUMNS = ["created_at", "author"]


@dataclass
class HistoryRow:
    url: str
    cells: list[str]


@dataclass
class HistoryTable:
    """One kind of history on a card: its latest rows, whether there are more, its links."""

    title: str
    headers: list[str]
    rows: list[HistoryRow] = field(default_factory=list)
    more: bool = False
    all_url: str = ""
    add_url: str = ""
    add_label: str = ""


@dataclass
class CardHistory:
    tables: list[HistoryTable]
    # (label, URL) of every row of the kinds edited inline (notes, tasks): the inline shows only the latest.
    inline_links: list[tuple[str, str]]


def _admin_url(admin_site, model, view: str, *args) -> str:
    try:
        return reverse(f"{admin_site.name}:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)
    except NoReverseMatch:
        return ""


def _cell(item: models.Model, name: str, empty: str) -> str:
    model_field = item._meta.get_field(name)
    value = getattr(item, name)
    if model_field.is_relation:
        return str(value) if value is not None else empty
    shown = display_for_field(value, model_field, empty)
    if isinstance(model_field, models.TextField | models.CharField) and not model_field.choices:
        return Truncator(str(shown)).chars(CELL_CHARS)
    return shown


def _history_sizes(kinds: list[type[models.Model]], content_type_id: int, object_id) -> list[int]:
    """How many items of each kind the record has, counted up to HISTORY_LATEST + 1, in one query: most records
    have no calls or messages at all, and their tables then cost no query of their own."""
    connection = connections[router.db_for_read(kinds[0])]
    quote = connection.ops.quote_name
    parts, params = [], []
    for model in kinds:
        parts.append(
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM {quote(model._meta.db_table)} WHERE "
            f"{quote('content_type_id')} = %s AND {quote('object_id')} = %s LIMIT {HISTORY_LATEST + 1}) counted)"
        )
        params += [content_type_id, object_id]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        return list(cursor.fetchone())


def card_history(request, admin_site, record: models.Model) -> CardHistory:
    """Return the history tables of a record's card, HISTORY_LATEST rows each: one query for how many items of
    each kind the record has, and one per kind it has items of."""
    content_type = ContentType.objects.get_for_model(type(record))
    owner = {"content_type": content_type.pk, "object_id": record.pk}
    filters = urlencode({"content_type__id__exact": content_type.pk, "object_id": record.pk})
    empty = admin_site.empty_value_display
    shown = []
    for model in HISTORY_COLUMNS:
        model_admin = admin_site._registry.get(model)
        if model_admin is not None and model_admin.has_view_or_change_permission(request):
            shown.append((model, model_admin))
    sizes = _history_sizes([model for model, _admin in shown], content_type.pk, record.pk) if shown else []
    tables = []
    for (model, model_admin), size in zip(shown, sizes):
        columns = HISTORY_COLUMNS[model]
        items = []
        if size:
            items = list(
                model._default_manager.filter(content_type=content_type, object_id=record.pk)
                .select_related("author")
                .order_by("-created_at", "-id")[:HISTORY_LATEST]
            )
        names = [*columns, *COMMON_COLUMNS]
        table = HistoryTable(
            title=capfirst(model._meta.verbose_name_plural),
            headers=[capfirst(model._meta.get_field(name).verbose_name) for name in names],
            more=size > HISTORY_LATEST,
            all_url=f"{_admin_url(admin_site, model, 'changelist')}?{filters}",
        )
        if model_admin.has_add_permission(request):
            table.add_url = f"{_admin_url(admin_site, model, 'add')}?{urlencode(owner)}"
            table.add_label = str(model._meta.verbose_name)
        for item in items:
            table.rows.append(
                HistoryRow(url=_admin_url(admin_site, model, "change", item.pk),
                           cells=[_cell(item, name, empty) for name in names])
            )
        tables.append(table)
    inline_links = []
    for model in INLINE_KINDS:
        model_admin = admin_site._registry.get(model)
        if model_admin is not None and model_admin.has_view_or_change_permission(request):
            inline_links.append((capfirst(model._meta.verbose_name_plural),
                                 f"{_admin_url(admin_site, model, 'changelist')}?{filters}"))
    return CardHistory(tables=tables, inline_links=inline_links)
