"""Write what duplicate control did to records into the admin's own log (LogEntry), so each record's History
page shows its merges, undos and "not a duplicate" decisions next to its ordinary edits.

The entry's text is a stored text (dedup.messages): its id and parameters as JSON in ``change_message``, which
the History page (templates/admin/object_history.html, the ``log_message`` filter) renders in the reader's
language. Entries written before, and Django's own, read as they always did. Actions without a user (the
scheduler's auto-merge, the intake) have no LogEntry — LogEntry requires a user — and are in the merge history.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import models
from django.utils.translation import gettext_lazy, ngettext_lazy

from dedup.messages import Message, render


def _acting(user) -> bool:
    return user is not None and getattr(user, "pk", None) is not None and getattr(user, "is_authenticated", False)


def log_text(change_message: str) -> str | None:
    """Return a LogEntry's stored message in the reader's language, or None when it is not one of ours."""
    if not change_message or not change_message.startswith("{"):
        return None
    try:
        data = json.loads(change_message)
    except ValueError:
        return None
    if not isinstance(data, dict) or not ({"id", "msg", "join"} & set(data)):
        return None
    return render(data)


def audit_log(*, user, records: Iterable[models.Model], message, action_flag: int = CHANGE) -> int:
    """Log ``message`` (a Message, stored as its id and parameters; or plain text) on each record for ``user``;
    return how many entries were written."""
    records = [record for record in records if record is not None and record.pk is not None]
    if not _acting(user) or not records:
        return 0
    stored = json.dumps(message.data, ensure_ascii=False) if isinstance(message, Message) else str(message)
    return len(LogEntry.objects.log_actions(user.pk, records, action_flag, stored))


def merge_logged(*, user, job_id: int, survivor: models.Model, absorbed: list[models.Model]) -> None:
    """Log a finished merge on the survivor and on each record merged into it."""
    audit_log(
        user=user,
        records=[survivor],
        message=Message.of(
            ngettext_lazy(
                "Merge #%(job)s: %(count)d record merged into this one: %(records)s.",
                "Merge #%(job)s: %(count)d records merged into this one: %(records)s.",
                "count",
            ),
            job=job_id,
            count=len(absorbed),
            records=list(absorbed),
        ),
    )
    audit_log(
        user=user,
        records=absorbed,
        message=Message.of(
            gettext_lazy("Merge #%(job)s: merged into %(record)s and archived."), job=job_id, record=survivor
        ),
    )


def undo_logged(*, user, job_id: int, survivor: models.Model, absorbed: list[models.Model]) -> None:
    """Log the undo of a merge on the survivor and on each record it gave back."""
    audit_log(
        user=user,
        records=[survivor],
        message=Message.of(
            ngettext_lazy(
                "Merge #%(job)s undone: %(count)d record separated again: %(records)s.",
                "Merge #%(job)s undone: %(count)d records separated again: %(records)s.",
                "count",
            ),
            job=job_id,
            count=len(absorbed),
            records=list(absorbed),
        ),
    )
    audit_log(
        user=user,
        records=absorbed,
        message=Message.of(
            gettext_lazy("Merge #%(job)s undone: a record of its own again, no longer part of %(record)s."),
            job=job_id,
            record=survivor,
        ),
    )


def not_duplicates_logged(*, user, records: list[models.Model], forgotten: bool = False, where="") -> None:
    """Log on each record that it was marked (or no longer marked) as not a duplicate of the others."""
    for record in records:
        others = [other for other in records if other.pk != record.pk]
        if forgotten:
            message = Message.of(gettext_lazy("No longer marked as not a duplicate of %(records)s."), records=others)
        else:
            message = Message.of(gettext_lazy("Marked as not a duplicate of %(records)s."), records=others)
        if where:
            message = Message.join([message, where], " ")
        audit_log(user=user, records=[record], message=message)
