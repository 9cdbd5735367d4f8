"""Name a record and link to its admin page, the same way on every screen, message, note and notification.

One form: "customer #12 Petrov Ivan" (the model's name, the id, the record's own name when it has one). On its
own (a link, a column, a title) it starts with a capital letter; inside a sentence it is lower-case and may take
a grammatical case, which languages with cases need: Russian says "объединена с клиентом №12", not "с клиент".
The word forms of a model come from the app that owns it (`word_forms_register`, e.g. crm/dedup_registration.py),
each a lazy translation whose English is the model's plain name.
"""
from __future__ import annotations

from django.apps import apps
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _

# The grammatical cases a sentence may ask of a record ("%(survivor__ins)s"); nominative is the default.
CASES = ("gen", "dat", "acc", "ins", "pre")

# {model label (lower case): {case: lazy translation}}
_WORD_FORMS: dict[str, dict] = {}


def word_forms_register(model: type[models.Model], **forms) -> None:
    """Say how a model's name reads in each grammatical case: ``ins=pgettext_lazy("instrumental case", "customer")``."""
    unknown = set(forms) - set(CASES)
    if unknown:
        raise ValueError(f"Unknown grammatical case(s) {sorted(unknown)}; use {CASES}")
    _WORD_FORMS.setdefault(model._meta.label_lower, {}).update(forms)


def model_word(label: str, case: str = "") -> str:
    """Return a model's name (by its label) in the active language, in a grammatical case when asked."""
    form = _WORD_FORMS.get(label, {}).get(case) if case else None
    if form is not None:
        return str(form)
    try:
        return str(apps.get_model(label)._meta.verbose_name)
    except (LookupError, ValueError):
        return label


def label_of(label: str, pk, name: str = "", *, case: str = "") -> str:
    """Return "customer #12 Petrov Ivan" for a model label, an id and a name, in the active language."""
    shown = _("%(model)s #%(pk)s") % {"model": model_word(label, case), "pk": pk}
    return f"{shown} {name}" if name and name.lower() != shown.lower() else shown


def record_label(record: models.Model) -> str:
    """Return "Customer #12 Petrov Ivan": a record's label on its own (a link, a column, a title)."""
    return capfirst(label_of(record._meta.label_lower, record.pk, str(record)))


def record_admin_url(model: type[models.Model], pk) -> str:
    """Return the admin change page of a record, or "" when the model has no admin (callers test truth)."""
    opts = model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    except NoReverseMatch:
        return ""
