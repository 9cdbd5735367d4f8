"""Recognise phone numbers written in messenger texts ("мой номер 8 912 345-67-89", "call me at +1 415 …")."""
from __future__ import annotations

import phonenumbers
from django.conf import settings

from dedup.engine.normalize import phone_e164

# A message is read up to this many characters: a pasted novel must not make a webhook slow.
MAX_SCANNED_CHARS = 4000
# A chat message mentioning more numbers than this is a list, not a customer giving their own number.
MAX_NUMBERS_PER_MESSAGE = 5


def phones_in_text(text: object, *, region: str | None = None) -> list[str]:
    """Return the valid phone numbers in a message text, in E.164, in the order written, without repeats.

    National forms ("8 912 345-67-89") are read in ``region`` (DEDUP_DEFAULT_REGION by default); numbers
    with a country code ("+1 (415) 555-0100") are read as written. Dates, order numbers and other digit
    runs that are not valid phone numbers are ignored.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    region = (region or getattr(settings, "DEDUP_DEFAULT_REGION", "RU")).upper()
    found: list[str] = []
    matcher = phonenumbers.PhoneNumberMatcher(
        text[:MAX_SCANNED_CHARS], region, leniency=phonenumbers.Leniency.VALID, max_tries=50
    )
    for match in matcher:
        # The same normaliser as stored phones, so a number found in a chat matches the contact's phone.
        e164 = phone_e164(match.raw_string, region) or phonenumbers.format_number(
            match.number, phonenumbers.PhoneNumberFormat.E164
        )
        if e164 not in found:
            found.append(e164)
        if len(found) >= MAX_NUMBERS_PER_MESSAGE:
            break
    return found
