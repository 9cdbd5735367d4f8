"""Say per imported row what happened and why, in the reader's language (the command's output, the admin)."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext as _

from dedup.messages import render

from ..models import ImportRow


def record_text(model: type[models.Model], pk: int | None, line: int | None = None) -> str:
    """Return "customer #12" (and "from line 4 of this file" when the file created it)."""
    if pk is None:
        return ""
    text = _("%(model)s #%(pk)s") % {"model": model._meta.verbose_name, "pk": pk}
    if line:
        text = _("%(record)s (line %(line)s of this file)") % {"record": text, "line": line}
    return text


def line_text(model: type[models.Model], line: dict | ImportRow) -> str:
    """Return one row's outcome as a sentence: "line 5: skipped, a duplicate of customer #3: same phone …"."""
    get = line.get if isinstance(line, dict) else lambda name: getattr(line, name)
    action, reasons = get("action"), get("reasons") or []
    why = "; ".join(render(reason) for reason in reasons)
    record = record_text(model, get("record_id"))
    match = record_text(model, get("match_id"), get("match_line"))
    if action == ImportRow.Action.CREATED:
        text = _("created %(record)s") % {"record": record}
    elif action == ImportRow.Action.FLAGGED:
        text = _("created %(record)s, flagged as a possible duplicate of %(match)s: %(why)s") % {
            "record": record, "match": match, "why": why}
    elif action == ImportRow.Action.UPDATED:
        text = _("updated %(record)s: %(why)s") % {"record": record, "why": why}
    elif action == ImportRow.Action.SKIPPED:
        text = _("skipped, a duplicate of %(match)s: %(why)s") % {"match": match, "why": why}
    else:
        text = _("not imported: %(why)s") % {"why": why}
    return _("line %(line)s: %(text)s") % {"line": get("line"), "text": text}
