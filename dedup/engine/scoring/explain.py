"""The "why" of a scored pair: each field's contribution as a message id with parameters, rendered on reading.

A reason is stored and passed around as (message id, parameters) so the reader sees it in their own language;
``Reason.text()`` renders it through Django's gettext (English msgids, Russian in locale/ru).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext


def gettext_noop(message: str) -> str:
    """Mark a message id for makemessages without needing Django's settings at import (plain unit use)."""
    return message


# One message per level (comparisons.LEVELS), with the field's label as %(field)s.
LEVEL_MESSAGES = {
    "exact": gettext_noop("%(field)s: the same"),
    "exact_rare": gettext_noop("%(field)s: the same, a rare value"),
    "exact_common": gettext_noop("%(field)s: the same, a common value"),
    "variant": gettext_noop("%(field)s: variants of one name"),
    "fuzzy_high": gettext_noop("%(field)s: nearly the same (a typo)"),
    "initials": gettext_noop("%(field)s: the initials fit the full name"),
    "phonetic": gettext_noop("%(field)s: sound the same"),
    "fuzzy_mid": gettext_noop("%(field)s: similar"),
    "different": gettext_noop("%(field)s: different"),
    "different_shared": gettext_noop("%(field)s: different, one of them shared by several people"),
    "day_month_swapped": gettext_noop("%(field)s: day and month swapped"),
    "one_digit": gettext_noop("%(field)s: one digit differs"),
    "one_char": gettext_noop("%(field)s: one character differs"),
    "same_national_number": gettext_noop("%(field)s: the same number written for another country"),
    "provider_folded": gettext_noop("%(field)s: the same mailbox (dots or a +tag)"),
    "missing": gettext_noop("%(field)s: missing on one side, no evidence"),
}
# The part of a person name's weight that whether both records hold a contact (a phone or an email) gives:
# model.FieldWeights.m_contact, shown as a reason of its own beside the name's level.
CONTACT_MESSAGES = {
    True: gettext_noop("%(field)s: both records give a phone or an email"),
    False: gettext_noop("%(field)s: at most one of the records gives a phone or an email"),
}
EVIDENCE_FOR = gettext_noop("%(reason)s (%(weight)s for a match)")
EVIDENCE_AGAINST = gettext_noop("%(reason)s (%(weight)s against a match)")
SUMMARY = gettext_noop("match probability %(percent)s%%")


@dataclass(frozen=True)
class Reason:
    """One field's contribution: the level's message id, the field label and the log2 Bayes factor."""

    message: str
    field: str
    weight: float

    def params(self) -> dict:
        return {"field": self.field, "weight": round(self.weight, 1)}

    def text(self) -> str:
        reason = gettext(self.message) % {"field": gettext(self.field)}
        if self.message == LEVEL_MESSAGES["missing"]:
            return reason
        template = EVIDENCE_FOR if self.weight >= 0 else EVIDENCE_AGAINST
        return gettext(template) % {"reason": reason, "weight": "%.1f" % abs(self.weight)}


def level_message(level_name: str | None, *, weight: float, average_exact_weight: float | None = None) -> str:
    """Return the message id of a level; an exact agreement says whether its value is rare or common."""
    if level_name is None:
        return LEVEL_MESSAGES["missing"]
    if level_name == "exact" and average_exact_weight is not None:
        if weight >= average_exact_weight + 2:
            return LEVEL_MESSAGES["exact_rare"]
        if weight <= average_exact_weight - 2:
            return LEVEL_MESSAGES["exact_common"]
    return LEVEL_MESSAGES[level_name]


def contact_message(contact: bool) -> str:
    """Return the message id of the contacts' being there on both records (True) or not (False)."""
    return CONTACT_MESSAGES[bool(contact)]


def summary_text(probability: float) -> str:
    return gettext(SUMMARY) % {"percent": "%.1f" % (probability * 100)}
