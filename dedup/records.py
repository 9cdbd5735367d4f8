"""Name a record and link to its admin page, the same way on every screen, message, note and notification."""
from __future__ import annotations

from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _


def record_label(record: models.Model) -> str:
    """Return "Customer #12 Petrov Ivan": the model, the id, and the record's own name when it has one."""
    label = _("%(model)s #%(pk)s") % {"model": capfirst(record._meta.verbose_name), "pk": record.pk}
    name = str(record)
    if name and name != label:
        return f"{label} {name}"
    return label


def record_admin_url(model: type[models.Model], pk) -> str:
    """Return the admin change page of a record, or "" when the model has no admin (callers test truth)."""
    opts = model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    except NoReverseMatch:
        return ""
