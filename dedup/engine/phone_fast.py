"""libphonenumber's parse and validation for plainly written numbers, without its generic machinery.

A phone written with digits, spaces, dashes, dots and brackets (``+7 912 345-67-89``, ``8 (912) 345-67-89``,
``(212) 570-2207``, ``+15551234567``) is, to ``phonenumbers.parse``, its digits and whether a plus leads them:
no extension, letter, second number or RFC 3966 part can hide in such a text. For those numbers ``e164`` walks
the steps of ``parse`` then ``is_valid_number`` and ``format_number(E164)`` on the digits alone, with each
region's patterns compiled once (a number's type is not needed, only whether it has one), and gives the same
result as libphonenumber: the E.164 text, or None where parse raises or the number is not valid. Anything else
(other characters, a region libphonenumber does not know, a non-geographic country code, a plus before an
unknown country code) is answered ``UNHANDLED`` and left to libphonenumber.

Reading a base of a million records parses a million numbers, and libphonenumber's pure-Python steps (a
Unicode digit table per character, a dozen regular expressions looked up by text per number) were half the
time of reading it. ``tests/dedup/test_phone_fast.py`` checks the answers against libphonenumber's on every
region's example numbers and on generated texts.
"""
from __future__ import annotations

import re

import phonenumbers

try:  # parse's length check (private: without it every number goes the long way)
    from phonenumbers.phonenumberutil import ValidationResult, _test_number_length
except ImportError:  # pragma: no cover - another libphonenumber port
    _test_number_length = None

UNHANDLED = object()

# Digits and the punctuation libphonenumber ignores, a plus only in front.
_PLAIN = re.compile(r"\+?[0-9 ().\-]+")
_NON_DIGITS = re.compile(r"[^0-9]+")
_MIN_NSN, _MAX_NSN, _MAX_COUNTRY_CODE = 2, 17, 3
_NON_GEO = "001"
_CODES = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
_SUPPORTED = phonenumbers.SUPPORTED_REGIONS


def e164(text: str, region: str) -> str | None | object:
    """Return ``phonenumbers.format_number(parse(text, region), E164)`` of a valid number, None when libphonenumber
    raises or the number is not valid, ``UNHANDLED`` when the text or region is not one this function reads."""
    if _test_number_length is None or region not in _SUPPORTED or len(text) > 250 or not _PLAIN.fullmatch(text):
        return UNHANDLED
    try:
        return _e164(text, region)
    except _Unhandled:
        return UNHANDLED


def _e164(text: str, region: str) -> str | None | object:
    plus = text[0] == "+"
    digits = _NON_DIGITS.sub("", text)
    if len(digits) < 3:  # libphonenumber's viability has a case of its own for two digits
        return UNHANDLED
    home = _metadata(region)
    if plus:
        code, national = _country_code(digits)
        if not code:  # parse retries without the plus
            return UNHANDLED
    else:
        code, national = _from_default_country(digits, home)
        if code is None:
            return None
    if code:
        main = _CODES[code][0]
        if main == _NON_GEO:
            return UNHANDLED
        metadata = home if main == region else _metadata(main)
        if metadata is None:
            return UNHANDLED
    else:
        national, metadata, code = digits, home, home.country_code
    if len(national) < _MIN_NSN:
        return None
    potential = _without_national_prefix(national, metadata)
    if _length_result(potential, metadata) not in _SHORT:
        national = potential
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    # national_significant_number gives these digits back: its leading zeros are kept apart and put back.
    return f"+{code}{national}" if _valid(code, national) else None


def _country_code(digits: str) -> tuple[int, str]:
    """parse's _extract_country_code: the first 1 to 3 digits that are a country code, and the rest."""
    if digits[0] == "0":
        return 0, digits
    for length in range(1, min(len(digits), _MAX_COUNTRY_CODE) + 1):
        code = int(digits[:length])
        if code in _CODES:
            return code, digits[length:]
    return 0, digits


def _from_default_country(digits: str, metadata) -> tuple[int | None, str]:
    """parse's _maybe_extract_country_code for a number without a plus: (country code, national number) when
    it starts with the region's international prefix or its own country code, (0, "") when it is national,
    (None, "") when parse raises."""
    idd = metadata.international_prefix
    match = _compiled(idd if idd is not None else "ZZ").match(digits)
    if match and not digits[match.end():match.end() + 1] == "0":
        rest = digits[match.end():]
        if len(rest) <= _MIN_NSN:
            return None, ""
        code, national = _country_code(rest)
        return (code, national) if code else (None, "")
    own = str(metadata.country_code)
    if digits.startswith(own):
        general = metadata.general_desc
        potential = _without_national_prefix(digits[len(own):], metadata)
        if ((not _matches(general, digits) and _matches(general, potential))
                or _length_result(digits, metadata) == ValidationResult.TOO_LONG):
            return metadata.country_code, potential
    return 0, ""


def _without_national_prefix(number: str, metadata) -> str:
    """_maybe_strip_national_prefix_carrier_code's number: without the national prefix (or as the region's
    transform rule rewrites it) when the region's general pattern does not say the number is whole as it is."""
    prefix = metadata.national_prefix_for_parsing
    if not number or not prefix:
        return number
    pattern = _compiled(prefix)
    match = pattern.match(number)
    if not match:
        return number
    general = metadata.general_desc
    rule = metadata.national_prefix_transform_rule
    groups = match.groups()
    if rule and not groups:  # libphonenumber fails there with an IndexError (no region's data does so)
        raise _Unhandled
    if not rule or groups[-1] is None:
        stripped = number[match.end():]
    else:
        stripped = pattern.sub(rule, number, count=1)
    if _matches(general, number) and not _matches(general, stripped):
        return number
    return stripped


class _Unhandled(Exception):
    """A case left to libphonenumber, found on the way."""


def _length_result(number: str, metadata) -> int:
    """_test_number_length(number, metadata): a function of the number's length alone, asked once per length."""
    key = (id(metadata), len(number))
    result = _LENGTHS.get(key)
    if result is None:
        result = _LENGTHS[key] = _test_number_length("0" * len(number), metadata)
    return result


def _valid(code: int, national: str) -> bool:
    """is_valid_number: the region the number belongs to (the first of its country code's regions whose
    leading digits or number types fit), then a type of that region's that fits."""
    regions = _CODES.get(code)
    if not regions:
        return False
    if len(regions) == 1:
        region = regions[0]
    else:
        region = None
        for candidate in regions:
            metadata = _metadata(candidate)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                if _compiled(metadata.leading_digits).match(national):
                    region = candidate
                    break
            elif _has_type(candidate, metadata, national):  # and so valid for it, its own code given
                return metadata.country_code == code
        if region is None:
            return False
    metadata = _metadata(region)
    if metadata is None or metadata.country_code != code:
        return False
    return _has_type(region, metadata, national)


def _has_type(region: str, metadata, national: str) -> bool:
    """_number_type_helper(national, metadata) != UNKNOWN: the general description fits, and a number type's."""
    by_length = _TYPES.get(region)
    if by_length is None:
        by_length = _TYPES[region] = _type_patterns(metadata)
    patterns = by_length.get(len(national))
    if patterns is None:
        patterns = by_length.get(None, ())
    general = patterns[0] if patterns else None
    if general is None or not general.fullmatch(national):
        return False
    return any(pattern.fullmatch(national) for pattern in patterns[1:])


def _type_patterns(metadata) -> dict:
    """Per number length, the general description's pattern (None when it does not allow that length) and the
    patterns of the number types _number_type_helper tries that allow it (a description without lengths allows
    every length; the mobile one only when it is not the fixed line's, as then a fixed line's miss is final).
    The key None holds those for a length no description names."""
    names = ["fixed_line", "mobile", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
             "pager", "uan", "voicemail"]
    if metadata.same_mobile_and_fixed_line_pattern:
        names.remove("mobile")
    general = _desc(metadata.general_desc)
    kinds = [kind for kind in (_desc(getattr(metadata, name)) for name in names) if kind[1] is not None]
    lengths = set(general[0]).union(*(kind[0] for kind in kinds))
    return {length: ((general[1] if not general[0] or length in general[0] else None),
                     *(pattern for kind_lengths, pattern in kinds if not kind_lengths or length in kind_lengths))
            for length in [*lengths, None]}


def _desc(desc) -> tuple:
    """(possible lengths, compiled pattern or None) of a description (_is_number_matching_desc's two checks)."""
    if desc is None:
        return frozenset(), None
    pattern = desc.national_number_pattern
    return frozenset(desc.possible_length), (_compiled(pattern) if pattern else None)


def _matches(desc, number: str) -> bool:
    """_match_national_number(number, desc, False)."""
    if desc is None or not desc.national_number_pattern:
        return False
    return _compiled(desc.national_number_pattern).fullmatch(number) is not None


_METADATA: dict[str, object] = {}
_LENGTHS: dict[tuple[int, int], int] = {}
_TYPES: dict[str, tuple] = {}
_PATTERNS: dict[str, re.Pattern] = {}


def _metadata(region: str):
    metadata = _METADATA.get(region)
    if metadata is None:
        metadata = _METADATA[region] = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    return metadata


def _compiled(pattern: str) -> re.Pattern:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern)
    return compiled


# parse keeps the number without its national prefix unless that leaves it of one of these lengths.
_SHORT = (frozenset((ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                     ValidationResult.INVALID_LENGTH))
          if _test_number_length is not None else frozenset())
