"""Normalise phones, emails, names, company names and messenger handles; pure functions, no ORM."""
from __future__ import annotations

import phonenumbers


def _default_region() -> str:
    try:
        from django.conf import settings

        return getattr(settings, "DEDUP_DEFAULT_REGION", "RU")
    except Exception:  # settings not configured (plain unit use)
        return "RU"


def phone_e164(raw: object, region: str | None = None) -> str | None:
    """Return the phone in E.164 (``+79123456789``), or None when it is not a possible number.

    National forms are read in ``region`` (DEDUP_DEFAULT_REGION by default); extensions are dropped.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > 64:
        return None
    region = (region or _default_region()).upper()
    digits = "".join(ch for ch in text if ch.isdigit())
    candidates = [text]
    if not text.startswith("+") and not text.startswith("00"):
        # "79123456789" typed without the plus is an international number in most CRMs' data.
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number):
            number.extension = None
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


# The functions below are the public API the rest of dedup relies on. Each returns a normalised key, or
# None when the value cannot be matched (empty, garbage); none of them ever raises.


def email_key(raw: object, *, fold_provider: bool = False) -> str | None:
    """Return the email trimmed and lower-cased; with fold_provider, Gmail-style dots and +tags folded."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    if not local or "." not in domain:
        return None
    if fold_provider:
        local = local.split("+", 1)[0]
        if domain in {"gmail.com", "googlemail.com"}:
            local = local.replace(".", "")
            domain = "gmail.com"
    return f"{local}@{domain}"


def person_name_key(raw: object) -> str | None:
    """Return the name's words case-, accent- and script-folded and sorted, so word order does not matter."""
    if not isinstance(raw, str):
        return None
    words = sorted(word for word in raw.lower().split() if word)
    return " ".join(words) or None


def company_name_key(raw: object) -> str | None:
    """Return the company name without legal form, quotes and punctuation."""
    if not isinstance(raw, str):
        return None
    words = [word for word in "".join(ch if ch.isalnum() else " " for ch in raw.lower()).split()]
    return " ".join(words) or None


def handle_key(raw: object) -> str | None:
    """Return a messenger handle without '@' and case (``telegram:@Ivan`` -> ``telegram:@ivan``)."""
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    return text or None


def text_key(raw: object) -> str | None:
    """Return any text or number field trimmed, case-folded and with inner whitespace collapsed."""
    if raw is None:
        return None
    text = " ".join(str(raw).split()).casefold()
    return text or None
