"""Write what duplicate control did to records into the admin's own log (LogEntry), so each record's History
page shows its merges, undos and "not a duplicate" decisions next to its ordinary edits.

Django's History page shows a LogEntry's text as stored, so the message is written in the language of the
user who acted (merges run in the requester's language). Actions without a user (the scheduler's
auto-merge, the intake) have no LogEntry — LogEntry requires a user — and are in the merge history instead.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup.records import record_label


def _acting(user) -> bool:
    return user is not None and getattr(user, "pk", None) is not None and getattr(user, "is_authenticated", False)


def audit_log(*, user, records: Iterable[models.Model], message: str, action_flag: int = CHANGE) -> int:
    """Log ``message`` on each record for ``user``; return how many entries were written."""
    records = [record for record in records if record is not None and record.pk is not None]
    if not _acting(user) or not records:
        return 0
    return len(LogEntry.objects.log_actions(user.pk, records, action_flag, str(message)))


def _labels(records: Iterable[models.Model]) -> str:
    return ", ".join(record_label(record) for record in records)


def merge_logged(*, user, job_id: int, survivor: models.Model, absorbed: list[models.Model]) -> None:
    """Log a finished merge on the survivor and on each record merged into it."""
    audit_log(
        user=user,
        records=[survivor],
        message=ngettext(
            "Merge #%(job)s: %(count)d record merged into this one: %(records)s.",
            "Merge #%(job)s: %(count)d records merged into this one: %(records)s.",
            len(absorbed),
        )
        % {"job": job_id, "count": len(absorbed), "records": _labels(absorbed)},
    )
    audit_log(
        user=user,
        records=absorbed,
        message=_("Merge #%(job)s: merged into %(record)s and archived.")
        % {"job": job_id, "record": record_label(survivor)},
    )


def undo_logged(*, user, job_id: int, survivor: models.Model, absorbed: list[models.Model]) -> None:
    """Log the undo of a merge on the survivor and on each record it gave back."""
    audit_log(
        user=user,
        records=[survivor],
        message=ngettext(
            "Merge #%(job)s undone: %(count)d record separated again: %(records)s.",
            "Merge #%(job)s undone: %(count)d records separated again: %(records)s.",
            len(absorbed),
        )
        % {"job": job_id, "count": len(absorbed), "records": _labels(absorbed)},
    )
    audit_log(
        user=user,
        records=absorbed,
        message=_("Merge #%(job)s undone: a record of its own again, no longer part of %(record)s.")
        % {"job": job_id, "record": record_label(survivor)},
    )


def not_duplicates_logged(*, user, records: list[models.Model], forgotten: bool = False, where: str = "") -> None:
    """Log on each record that it was marked (or no longer marked) as not a duplicate of the others."""
    for record in records:
        others = _labels(other for other in records if other.pk != record.pk)
        if forgotten:
            message = _("No longer marked as not a duplicate of %(records)s.") % {"records": others}
        else:
            message = _("Marked as not a duplicate of %(records)s.") % {"records": others}
        if where:
            message = f"{message} {where}"
        audit_log(user=user, records=[record], message=message)
