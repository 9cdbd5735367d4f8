"""Comparison levels per field type: read a raw value once (``prepare``), then grade a pair of them (``compare``).

Every type has an ordered list of levels, the strongest agreement first and "different" last; ``compare``
returns the index of the best level two values reach, or ``MISSING`` (-1) when either side has no usable value.
Pure functions, no ORM, never raising: a placeholder ("n/a", "unknown", "0000000") or garbage (a phone "abc", a
date "31/31/2020", a 10 kB name) is prepared as None, i.e. missing, and a missing value is no evidence either way.

A field holds one value or several (a customer's phones): the pair's level is the best over all value pairs.
(About 490 lines, past the usual 400: nine types' readers and graders side by side, each a few lines.)
"""
from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from operator import attrgetter

import phonenumbers
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler
from rapidfuzz.fuzz import token_set_ratio

from dedup.engine import normalize
from dedup.engine.scoring.names import are_variants, known_apart, phonetic_key, variant_groups

MISSING = -1

TEXT = "text"
PERSON_NAME = "person_name"
COMPANY_NAME = "company_name"
DATE = "date"
NUMBER = "number"
IDENTIFIER = "identifier"
PHONE = "phone"
EMAIL = "email"
ADDRESS = "address"

# The levels of each type, strongest first; the names are the message keys of the "why" (scoring/explain.py).
LEVELS: dict[str, tuple[str, ...]] = {
    TEXT: ("exact", "fuzzy_high", "fuzzy_mid", "different"),
    PERSON_NAME: ("exact", "variant", "fuzzy_high", "initials", "phonetic", "fuzzy_mid", "different"),
    COMPANY_NAME: ("exact", "fuzzy_high", "fuzzy_mid", "different"),
    DATE: ("exact", "day_month_swapped", "one_digit", "different"),
    NUMBER: ("exact", "one_digit", "different"),
    IDENTIFIER: ("exact", "one_char", "different"),
    # "different_shared": different, and one side is a line or mailbox several people give (an office
    # switchboard, a family mailbox: model.FieldWeights.shared). ``compare`` never returns it; the matcher
    # sets it (matcher.split_shared) once the base's shared values are known. A person's two records differ on
    # a switchboard and their own line often; on two own lines rarely: namesakes at one company do.
    PHONE: ("exact", "same_national_number", "one_digit", "different_shared", "different"),
    # No "same local part" or "similar" level: a local part is mostly the person's name (ivan.petrov@...), so
    # namesakes agree on it as often as duplicates do, and the name field already counts that evidence.
    EMAIL: ("exact", "provider_folded", "different_shared", "different"),
    ADDRESS: ("exact", "fuzzy_high", "fuzzy_mid", "different"),
}
FIELD_TYPES = tuple(LEVELS)

# Jaro-Winkler bands: 0.92 keeps one typo in a 6-letter word (Smirnov / Smirmov 0.94), 0.80 two typos or a
# dropped syllable; below that, two names are different names. The same bands for every text-like type.
HIGH = 0.92
MID = 0.80

# Values that mean "not filled in": one list for the index and scoring, kept in normalize (the default, and the
# list the administrator edits as this process last read it).
DEFAULT_PLACEHOLDERS = normalize.DEFAULT_PLACEHOLDERS
# A value longer than this is a pasted document, not a field value: missing.
MAX_VALUE_LENGTH = 512
# A field with more values than this is read on its first values only (a pasted list).
MAX_VALUES = 8


@dataclass(frozen=True, slots=True)
class Person:
    words: tuple[str, ...]  # folded, sorted
    plain: tuple[str, ...]  # the same words only case-folded, in their own script (for typos)
    key: str  # " ".join(words)
    groups: tuple[frozenset[int], ...]
    phonetic: str


@dataclass(frozen=True, slots=True)
class Company:
    key: str
    digits: str
    plain: str = ""  # the key's words only case-folded, in their own script (for typos)


@dataclass(frozen=True, slots=True)
class Phone:
    e164: str
    national: str


@dataclass(frozen=True, slots=True)
class Email:
    exact: str
    folded: str


def is_placeholder(raw: object, placeholders: frozenset[str] | None = None) -> bool:
    """Tell whether a raw value means "not filled in" (normalize.is_placeholder: the administrator's list unless
    one is given, or one character repeated: 1111111, ---)."""
    return normalize.is_placeholder(raw, placeholders)


def values_of(raw: object) -> list[object]:
    """Return the values of a field: a list or tuple as its items, anything else as one value."""
    if isinstance(raw, (list, tuple, set, frozenset)):
        return list(raw)[:MAX_VALUES]
    return [raw]


def prepare(field_type: str, raw: object, *, region: str | None = None,
            placeholders: frozenset[str] | None = None, stored: bool = False) -> tuple | None:
    """Return a field's values read for comparison (a tuple, one item per usable value), or None when none is.

    ``region`` is the record's own country (ISO code) for phones written in its national format. ``stored``:
    the values are the normalised keys the database keeps (a phone's E.164 column, validated when it was
    saved), read without normalising them again.
    """
    preparers = _STORED_PREPARERS if stored else _PREPARERS
    if type(raw) is str:  # one text, the usual field: the loop below without its list
        if len(raw) > MAX_VALUE_LENGTH or is_placeholder(raw, placeholders):
            return None
        try:
            item = preparers[field_type](raw, region)
        except Exception:
            return None
        return None if item is None else (item,)
    prepared = []
    for value in values_of(raw):
        if is_placeholder(value, placeholders):
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
            continue
        try:
            item = preparers[field_type](value, region)
        except Exception:  # garbage of a kind nobody foresaw: missing, never a crash
            item = None
        if item is not None and item not in prepared:
            prepared.append(item)
    return tuple(prepared) if prepared else None


def exact_key(field_type: str, item) -> str:
    """Return the text two values share when they agree exactly (counted for term frequencies)."""
    if field_type == PERSON_NAME:
        return item.key
    if field_type == COMPANY_NAME:
        return item.key
    if field_type == PHONE:
        return item.e164
    if field_type == EMAIL:
        return item.folded
    if field_type == DATE:
        return "%04d-%02d-%02d" % item
    return item


def column_exact_keys(field_type: str, values: Sequence[tuple]) -> list[list[str]]:
    """Return ``exact_key`` of each item of each prepared value, in order (a column's distinct values at once)."""
    attribute = _EXACT_KEY_ATTRIBUTE.get(field_type)
    if attribute is None:
        return [[exact_key(field_type, item) for item in value] for value in values]
    key = attrgetter(attribute)
    return [list(map(key, value)) for value in values]


# The attribute ``exact_key`` reads, per type that has one.
_EXACT_KEY_ATTRIBUTE = {PERSON_NAME: "key", COMPANY_NAME: "key", PHONE: "e164", EMAIL: "folded"}


def compare(field_type: str, left: tuple | None, right: tuple | None) -> int:
    """Return the best level two prepared fields reach (an index into LEVELS[field_type]), MISSING without both."""
    if not left or not right:
        return MISSING
    grade = _GRADERS[field_type]
    if len(left) == 1 and len(right) == 1:
        return grade(left[0], right[0])
    worst = len(LEVELS[field_type]) - 1
    best = worst
    for a in left:
        for b in right:
            level = grade(a, b)
            if level < best:
                best = level
                if best == 0:
                    return 0
    return best


# The level a contact field's "different" turns into when one side is a shared value (matcher.split_shared).
DIFFERENT_SHARED = "different_shared"


def exact_agreement(field_type: str, left: tuple | None, right: tuple | None) -> str | None:
    """Return the exact key the two fields share (the rarest one when several), or None."""
    if not left or not right:
        return None
    keys = {exact_key(field_type, item) for item in left}
    shared = [exact_key(field_type, item) for item in right if exact_key(field_type, item) in keys]
    return shared[0] if shared else None


# ---------------------------------------------------------------------------------------------------------------
# Reading values


def _text(value, region):
    return normalize.text_key(value)


def _person(value, region):
    if not isinstance(value, str):
        return None
    forms = normalize.name_word_forms(value)  # a new list
    if not forms or len(forms) > 8:
        return None
    forms.sort()
    words = tuple([folded for folded, _plain in forms])
    # A million names share their words: the typed forms are interned (or are the folded ones), and the tuples
    # of variant groups are few, so one of each is kept (a base's names are then a third lighter).
    plain = tuple([folded if plain == folded else sys.intern(plain) for folded, plain in forms])
    groups = tuple(map(variant_groups, words))
    shared = _GROUP_TUPLES.get(groups)
    if shared is None:
        shared = groups
        if len(_GROUP_TUPLES) < _GROUP_TUPLES_MAX:
            _GROUP_TUPLES[groups] = groups
    return Person(words, words if plain == words else plain, " ".join(words), shared,
                  " ".join(sorted(map(phonetic_key, words))))


# The tuples of variant groups names have, one kept of each (few: most words are in no group or one; bounded,
# as a worker keeps it between scans: kind 1 of the caching rule in docs/ARCHITECTURE.md).
_GROUP_TUPLES: dict[tuple[frozenset[int], ...], tuple[frozenset[int], ...]] = {}
_GROUP_TUPLES_MAX = 1 << 16


_DIGITS = re.compile(r"\d+")


def _company(value, region):
    forms = normalize.company_word_forms(value)
    key = " ".join(folded for folded, _plain in forms)
    if not key or len(key) > normalize.KEY_MAX_LENGTH:
        return None
    return Company(key, " ".join(_DIGITS.findall(key)), " ".join(plain for _folded, plain in forms))


_DATE_PARTS = re.compile(r"\d+")


def _date(value, region):
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return (value.year, value.month, value.day)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            return None
        value = str(int(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    parts = _DATE_PARTS.findall(text)
    if len(parts) == 1 and len(parts[0]) == 8:  # 19560409
        digits = parts[0]
        year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    elif len(parts) >= 3:
        first, second, third = parts[:3]
        if len(first) == 4:  # 1956-04-09
            year, month, day = int(first), int(second), int(third)
        elif len(third) in (2, 4):  # 09.04.1956, 09/04/56; 04/29/1956 read month first when the day says so
            year = int(third) if len(third) == 4 else 1900 + int(third) + (100 if int(third) < 30 else 0)
            day, month = int(first), int(second)
            if month > 12 >= day:
                day, month = month, day
        else:
            return None
    else:
        return None
    try:
        parsed = date(year, month, day)
    except ValueError:  # 31/31/2020
        return None
    if not 1850 <= parsed.year <= 2100:
        return None
    return (parsed.year, parsed.month, parsed.day)


def _number(value, region):
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            text = value.strip().replace(" ", "").replace(",", ".")
            number = Decimal(text)
        else:
            number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    text = format(number.normalize(), "f")
    return text if len(text) <= 40 else None


_NOT_ALNUM = re.compile(r"[\W_]+")


def _identifier(value, region):
    if isinstance(value, float):
        if value != value or value != int(value):
            return None
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        return None
    text = _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", str(value))).upper()
    if not text or len(text) > 64 or len(set(text)) == 1:
        return None
    return text


def _phone(value, region):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    e164 = normalize.phone_e164(value, region)
    if e164 is None:
        return None
    return Phone(e164, national_number(e164))


def _stored_phone(value, region):
    """A stored E.164 key read as ``_phone`` reads it, without libphonenumber's parse and validation (a fifth of
    the time to read a base of a million customers): the key was validated when it was stored, and parsing a
    valid E.164 number gives it back."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "+" and value[1:].isdigit():
        return Phone(value, national_number(value))
    return _phone(value, region)


def national_number(e164: str) -> str:
    """Return the national number of a valid E.164 phone: what follows the country code (country codes are
    prefix-free), without parsing it again; a number with a leading zero (Italy) is parsed as libphonenumber
    keeps that zero apart."""
    digits = e164[1:]
    for length in (1, 2, 3):
        if digits[:length].isdigit() and int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            rest = digits[length:]
            if rest and rest.isdigit() and not rest.startswith("0"):
                return rest
            break
    try:
        return str(phonenumbers.parse(e164).national_number)
    except phonenumbers.NumberParseException:  # pragma: no cover - e164 always parses
        return e164


def _email(value, region):
    exact = normalize.email_key(value)
    if exact is None:
        return None
    if exact == value:  # one string kept, not equal copies (a million addresses)
        exact = value
    folded = normalize.email_key_folded(exact) or exact
    if folded == exact:
        folded = exact
    return Email(exact, folded)


def _address(value, region):
    if not isinstance(value, str):
        return None
    words = normalize.fold_words(value)
    if not words or len(words) > 40:
        return None
    return " ".join(words)


_PREPARERS = {
    TEXT: _text, PERSON_NAME: _person, COMPANY_NAME: _company, DATE: _date, NUMBER: _number,
    IDENTIFIER: _identifier, PHONE: _phone, EMAIL: _email, ADDRESS: _address,
}
_STORED_PREPARERS = {**_PREPARERS, PHONE: _stored_phone}


# ---------------------------------------------------------------------------------------------------------------
# Grading a pair of values


def _jaro_winkler(a: str, b: str) -> float:
    return JaroWinkler.normalized_similarity(a, b)


def _grade_text(a: str, b: str) -> int:
    if a == b:
        return 0
    similarity = _jaro_winkler(a, b)
    return 1 if similarity >= HIGH else 2 if similarity >= MID else 3


def grade_person(a: Person, b: Person) -> int:
    if a.key == b.key:
        return 0
    if gendered_pair(a, b):  # Petrov / Petrova, Ivan / Ivana: in Russian two people, not a typo
        return len(LEVELS[PERSON_NAME]) - 1
    if len(a.words) == len(b.words) and _pair_variants(a.words, b.words):
        return 1
    # A typo is judged word by word: every word of the shorter name pairs off with one of the other's as equal,
    # a variant or one edit apart (Smirnov / Smirmov), so a middle name or patronymic may be added (Ivan Petrov /
    # Ivan Sergeevich Petrov). A whole-name similarity would call two relatives a typo of each other: "isakov
    # mir" / "isakov maksim" share a long prefix (Jaro-Winkler 0.92) but their first names are different names.
    short, long = (a, b) if len(a.words) <= len(b.words) else (b, a)
    if (len(short.words) == len(long.words) or len(short.words) >= 2) and _pair_off(
            tuple(zip(short.words, short.plain)), tuple(zip(long.words, long.plain)), _typo_or_variant):
        return 2
    similarity = _jaro_winkler(a.key, b.key)
    if _initials_fit(a.words, b.words):
        return 3
    if a.phonetic == b.phonetic:
        return 4
    return 5 if similarity >= MID else 6


def gendered_pair(a: Person, b: Person) -> bool:
    """Tell whether a word of one name is a word of the other with a feminine ending added (Petrov / Petrova).

    Judged on the folded words, but an ending adds letters to the typed word too: two typed words of one length
    are a typo of the last letter, not a gender (Smith / Smita fold to "smit" / "smita", Шиловв / Шилова to
    "shilov" / "shilova", Ball / Bala to "bal" / "bala")."""
    return _gendered_words(a, b) or _gendered_words(b, a)


def _gendered_words(a: Person, b: Person) -> bool:
    """Tell whether a word of ``b`` is a word of ``a`` with "a" or "na" added, typed longer."""
    typed_b = dict(zip(b.words, b.plain))
    for word, plain in zip(a.words, a.plain):
        if len(word) < 3:
            continue
        for ending in ("a", "na"):
            other = typed_b.get(word + ending)
            if other is not None and len(other) != len(plain):
                return True
    return False


def _initials_fit(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Tell whether names with initials fit each other (Petrov I. / Ivan Petrov); False when neither has one."""
    if not any(map(normalize.is_initial, a)) and not any(map(normalize.is_initial, b)):
        return False
    return normalize.names_compatible(" ".join(a), " ".join(b))


def _pair_variants(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    """Tell whether the words pair off one to one as equal words or variants (Mike Smith / Smith Michael)."""
    return _pair_off(short, long, are_variants)


def _pair_off(short: tuple, long: tuple, fits) -> bool:
    """Tell whether every word of ``short`` pairs off with its own word of ``long`` under ``fits``.

    Not greedily: a word that fits two words of the other name must take the one the others leave ("Danny
    Daniel" / "Danny Dbniel": Daniel is a variant of Danny, and took it from Danny, left with "Dbniel"). Names
    have a few words (at most eight), so the search over the few fitting words is short."""
    if len(short) > len(long):
        return False
    options = [[position for position, other in enumerate(long) if fits(word, other)] for word in short]
    if not all(options):
        return False
    taken = [False] * len(long)

    def place(index: int) -> bool:
        if index == len(options):
            return True
        for position in options[index]:
            if not taken[position]:
                taken[position] = True
                if place(index + 1):
                    return True
                taken[position] = False
        return False

    return place(0)


def one_edit(a: str, b: str, *, min_length: int = 4) -> bool:
    """Tell whether two words of at least ``min_length`` letters are one edit apart (a letter substituted,
    added, dropped, or two neighbours swapped): a typo. Shorter words carry too little to tell a typo from
    another word (Ivan / Ivar)."""
    if min(len(a), len(b)) < min_length or abs(len(a) - len(b)) > 1:
        return False
    return DamerauLevenshtein.distance(a, b, score_cutoff=1) <= 1


# Word pairs come back pair after pair (a common first name against its variants): the recent ones are judged
# once (bounded: a worker keeps the memo between scans).
@lru_cache(maxsize=1 << 16)
def _typo_or_variant(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Tell whether two name words, each (folded, plain), are one name: equal, variants, or one typo apart in
    either form (long words also by Jaro-Winkler: Kondratyev / Kondratiev, OCR misreads, when their lengths
    differ by a letter at most: ``alike_long``)."""
    (folded_a, plain_a), (folded_b, plain_b) = a, b
    if are_variants(folded_a, folded_b):
        return True
    if known_apart(a, b):
        return False
    return (one_edit(folded_a, folded_b) or one_edit(plain_a, plain_b) or short_typo(plain_a, plain_b)
            or alike_long(folded_a, folded_b))


def alike_long(a: str, b: str) -> bool:
    """Tell whether two long folded words (``LONG_WORD`` letters and more) are alike by Jaro-Winkler, as a typo
    or a misread: at most ``LONG_WORD_LENGTHS_APART`` letters longer or shorter. Jaro-Winkler favours a shared
    start, and a word with a syllable more is another name (Martin / Martinez, Williams / Williamson, Komarov /
    Komissarov, Stephen / Stephanie: at 1,000,000 CRM records these made namesakes' "typos")."""
    return (min(len(a), len(b)) >= LONG_WORD and abs(len(a) - len(b)) <= LONG_WORD_LENGTHS_APART
            and _jaro_winkler(a, b) >= HIGH)


# Name words this long are also compared by Jaro-Winkler (``alike_long``), when this many letters apart at most.
LONG_WORD = 6
LONG_WORD_LENGTHS_APART = 1


def short_typo(a: str, b: str) -> bool:
    """Tell whether two typed three-letter words are one letter apart past the first (Cox / Cok, Lee / Lke, May /
    Mac): a typo in a short surname. The first letter and a length change are not (Cox / Fox, Lee / Le)."""
    return (len(a) == len(b) == SHORT_TYPO_LENGTH and a[0] == b[0]
            and (a[1] != b[1]) + (a[2] != b[2]) == 1)


# The length of the typed words ``short_typo`` judges (one_edit judges four letters and more).
SHORT_TYPO_LENGTH = 3


def _grade_company(a: Company, b: Company) -> int:
    if a.key == b.key:
        return 0
    if a.digits != b.digits:  # "Vector 1552" and "Vector 1522" are two companies
        return 3
    # One typo, in the folded or the typed spelling: "Sever" / "Sveer", "Cedar" / "Cdear" (folded "kdear"), or
    # one per word ("Cedar Supply" / "Cdear Suply"). A whole-name similarity is no typo: "Starlight" and
    # "Starlightredwood", "Rheintal" and "Rheintal Bau" share a long prefix (Jaro-Winkler 0.92+) and are two
    # companies (CRM 100k candidates: 12,486 such pairs, none of one company).
    if one_edit(a.key, b.key, min_length=5) or one_edit(a.plain, b.plain, min_length=5) or words_one_edit(a, b):
        return 1
    return 2 if _jaro_winkler(a.key, b.key) >= MID else 3


def words_one_edit(a: Company, b: Company) -> bool:
    """Tell whether two company names have as many words, each equal or one typo from its own word of the other."""
    words_a, words_b = a.key.split(" "), b.key.split(" ")
    plain_a, plain_b = a.plain.split(" "), b.plain.split(" ")
    if len(words_a) != len(words_b) or len(words_a) < 2 or len(plain_a) != len(words_a) or len(plain_b) != len(
            words_b):
        return False
    return _pair_off(tuple(zip(words_a, plain_a)), tuple(zip(words_b, plain_b)),
                     lambda x, y: x[0] == y[0] or one_edit(x[0], y[0]) or one_edit(x[1], y[1]))


def _grade_date(a: tuple, b: tuple) -> int:
    if a == b:
        return 0
    if a[0] == b[0] and a[1] == b[2] and a[2] == b[1]:
        return 1
    if _one_digit_apart("%04d%02d%02d" % a, "%04d%02d%02d" % b):
        return 2
    return 3


def _one_digit_apart(a: str, b: str) -> bool:
    """Tell whether two digit strings differ by one substituted digit or two swapped neighbours."""
    if len(a) != len(b):
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diffs) == 1:
        return True
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


def _grade_number(a: str, b: str) -> int:
    if a == b:
        return 0
    return 1 if _one_digit_apart(a, b) else 2


def _grade_identifier(a: str, b: str) -> int:
    if a == b:
        return 0
    if abs(len(a) - len(b)) <= 1 and DamerauLevenshtein.distance(a, b, score_cutoff=1) <= 1:
        return 1
    return 2


def _grade_phone(a: Phone, b: Phone) -> int:
    if a.e164 == b.e164:
        return 0
    if a.national == b.national:  # one number read in two countries' formats
        return 1
    return 2 if _one_digit_apart(a.national, b.national) else 4


def _grade_email(a: Email, b: Email) -> int:
    if a.exact == b.exact:
        return 0
    return 1 if a.folded == b.folded else 3


def _grade_address(a: str, b: str) -> int:
    if a == b:
        return 0
    similarity = max(_jaro_winkler(a, b), token_set_ratio(a, b) / 100)
    return 1 if similarity >= 0.9 else 2 if similarity >= 0.75 else 3


_GRADERS = {
    TEXT: _grade_text, PERSON_NAME: grade_person, COMPANY_NAME: _grade_company, DATE: _grade_date,
    NUMBER: _grade_number, IDENTIFIER: _grade_identifier, PHONE: _grade_phone, EMAIL: _grade_email,
    ADDRESS: _grade_address,
}
