"""phone_fast.e164 gives libphonenumber's answer (parse, is_valid_number, E.164) for every text it reads."""
from __future__ import annotations

import random

import phonenumbers
import pytest

from dedup.engine import normalize, phone_fast


def _libphonenumber(text: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    number.extension = None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _texts() -> list[tuple[str, str]]:
    """Every region's example numbers of every type in three formats, read in their region and others, and
    variants: a digit changed, a digit dropped, with 00 / 8 / the country code in front, random digit runs."""
    rng = random.Random(16)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    texts = []
    for region in regions:
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for form in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                         phonenumbers.PhoneNumberFormat.NATIONAL):
                written = phonenumbers.format_number(example, form)
                texts += [(written, region), (written, rng.choice(regions)), (written, "US")]
            national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
            digits = "".join(ch for ch in national if ch.isdigit())
            position = rng.randrange(len(digits))
            changed = digits[:position] + str(rng.randrange(10)) + digits[position + 1:]
            texts += [(changed, region), (digits[:-1], region), ("00%d%s" % (example.country_code, changed),
                                                                 rng.choice(regions)),
                      ("8" + digits, region), ("%d%s" % (example.country_code, digits), region),
                      ("+%d %s" % (example.country_code, changed), rng.choice(regions))]
    for _ in range(5000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(3, 18)))
        cut = rng.randrange(1, len(digits))
        text = digits[:cut] + rng.choice(["", " ", "-", "(", ")", "."]) + digits[cut:]
        texts.append(("+" + text if rng.random() < 0.4 else text, rng.choice(regions + ["RU", "US", "KZ"] * 20)))
    return list(dict.fromkeys(texts))


def test_the_same_answers_as_libphonenumber():
    handled = 0
    for text, region in _texts():
        answer = phone_fast.e164(text, region)
        if answer is phone_fast.UNHANDLED:
            continue
        handled += 1
        assert answer == _libphonenumber(text, region), (text, region)
    assert handled > 20_000  # the fast path is the usual one, not the exception


@pytest.mark.parametrize("text, region", [
    ("Tel: +7 912 345-67-89", "RU"),  # a label in front
    ("+7 912 345-67-89 ext. 12", "RU"),  # an extension
    ("1-800-FLOWERS", "US"),  # letters
    ("+7 912 345 67 89", "XX"),  # a region libphonenumber does not know
    ("+800 1234 5678", "US"),  # a non-geographic country code
    ("12", "RU"),  # two digits: libphonenumber's own case
    ("+999 123 4567", "RU"),  # a plus before no country code: parse retries without it
])
def test_other_texts_are_left_to_libphonenumber(text, region):
    assert phone_fast.e164(text, region) is phone_fast.UNHANDLED


def test_normalize_reads_phones_as_before(monkeypatch):
    texts = [(text, region) for text, region in _texts()[:6000]]
    fast = [normalize._phone_e164.__wrapped__(text, region) for text, region in texts]
    monkeypatch.setattr(phone_fast, "e164", lambda text, region: phone_fast.UNHANDLED)
    assert fast == [normalize._phone_e164.__wrapped__(text, region) for text, region in texts]
