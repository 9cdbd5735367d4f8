"""Normalise phones, emails, names, company names and messenger handles into match keys; pure functions, no ORM.

Every public ``*_key`` function (and ``phone_e164``) returns a key string, or None when the value cannot be
matched (empty, garbage, not a string, too long). None of them ever raises. Keys are ASCII for names and
companies, plain printable Unicode for the rest, never longer than KEY_MAX_LENGTH, and never contain control
characters or lone surrogates, so they can be stored in a ``CharField(max_length=KEY_MAX_LENGTH)`` on any database.

Names and company names go through ONE script-folding pipeline (``fold_token``):

1. NFKC, then split into letter/digit runs (apostrophes join: O'Brien -> obrien; everything else separates);
2. transliterate each run to ASCII with ``anyascii`` (Cyrillic, Greek, accents, CJK...), lower-case it;
3. a small phonetic simplification, applied until it no longer changes anything (so it is idempotent), that
   makes the usual spellings of one name meet: see ``_PHONETIC_RULES`` and tests/dedup/test_normalize.py.

Decisions worth knowing:
- gendered surname and first-name forms stay different (Petrov != Petrova, Ivan != Ivana/Ivanna): in Russian
  they are different people far more often than typos; ``similarity.name_similarity`` caps such pairs too;
- spelling variants that do meet: Mark/Marc, Jan/Yan/Ian, Ana/Anna, Daniel/Danel (y, j, i are one letter and
  double letters are one letter); German umlaut spelled out (Mueller) does not meet Müller (anyascii: Muller).
"""
from __future__ import annotations

import math
import re
import unicodedata
from decimal import Decimal
from functools import lru_cache
from uuid import UUID

import phonenumbers
from anyascii import anyascii

from dedup.engine import phone_fast

# A key must fit a CharField(max_length=255) of the match-key index; a longer normalised value is not matched.
KEY_MAX_LENGTH = 255
# Inputs longer than these are garbage (a pasted document), not a name or a phone: never matched, never parsed.
_MAX_NAME_INPUT = 512
_MAX_PHONE_INPUT = 64
_MAX_EMAIL_INPUT = 320
_MAX_HANDLE_INPUT = 256
_MAX_TEXT_INPUT = 4096


def _default_region() -> str:
    try:
        from django.conf import settings

        return str(getattr(settings, "DEDUP_DEFAULT_REGION", "RU") or "RU")
    except Exception:  # settings not configured (plain unit use)
        return "RU"


def _printable(text: str) -> str:
    """Return text with control, format, surrogate and unassigned characters replaced by spaces."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " for ch in text)


# ---------------------------------------------------------------------------------------------------------------
# Phones


def phone_e164(raw: object, region: str | None = None) -> str | None:
    """Return the phone in E.164 (``+79123456789``), or None when it is not a valid number.

    National forms are read in ``region`` (DEDUP_DEFAULT_REGION by default): in RU ``8 912 345-67-89``,
    ``+7 (912) 345 67 89`` and ``79123456789`` are one number; ``00`` international prefixes are understood;
    extensions (``ext. 12``, ``доб. 12``) are dropped. Only numbers valid per libphonenumber's metadata are
    keyed, so placeholders such as ``1234567890`` do not make everyone a duplicate of everyone.
    """
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_PHONE_INPUT:
        return None
    try:
        return _phone_e164(raw, (region or _default_region()).upper())
    except Exception:  # libphonenumber on exotic input; a phone that cannot be read is simply not matched
        return None


_NOT_ASCII_DIGITS = re.compile(r"[^0-9]+")


# A pure function of its arguments, and an incoming request parses each of its numbers three times (validation,
# matching, storing): libphonenumber's parse is the costliest step of all three. (Kind 1 of the caching rule in
# docs/ARCHITECTURE.md: a bounded memo of a pure function; the region is an argument, never read inside.)
@lru_cache(maxsize=8192)
def _phone_e164(raw: str, region: str) -> str | None:
    text = _printable(raw).strip()
    if not text:
        return None
    digits = _NOT_ASCII_DIGITS.sub("", text)
    if len(digits) < 5:
        return None
    candidates = [text]
    if not text.lstrip("(").startswith("+") and not text.startswith("tel:"):
        if digits.startswith("00"):
            # 0049 30 1234567: the international call prefix of most of the world, whatever the region's own.
            candidates.append("+" + digits[2:])
        elif not digits.startswith("0"):
            # "79123456789" typed without the plus is an international number in most CRMs' data.
            candidates.append("+" + digits)
    for candidate in candidates:
        fast = phone_fast.e164(candidate, region)  # libphonenumber's answer for a plainly written number
        if fast is not phone_fast.UNHANDLED:
            if fast is not None:
                return fast
            continue
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            number.extension = None
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


# A message is read up to this many characters: a pasted novel must not make a webhook slow.
MAX_SCANNED_CHARS = 4000
# A chat message mentioning more numbers than this is a list, not a customer giving their own number.
MAX_NUMBERS_PER_MESSAGE = 5


def phones_in_text(raw: object, region: str | None = None) -> list[str]:
    """Return the valid phone numbers written in a free text (a chat message), in E.164, in the order written,
    without repeats.

    National forms ("8 912 345-67-89") are read in ``region`` (DEDUP_DEFAULT_REGION by default); numbers with
    a country code ("+1 (415) 555-0100") are read as written. Dates, order numbers and other digit runs that
    are not valid phone numbers are ignored; at most MAX_NUMBERS_PER_MESSAGE are returned.
    """
    if not isinstance(raw, str) or not raw.strip():
        return []
    region = (region or _default_region()).upper()
    found: list[str] = []
    try:
        matcher = phonenumbers.PhoneNumberMatcher(
            _printable(raw[:MAX_SCANNED_CHARS]), region, leniency=phonenumbers.Leniency.VALID, max_tries=50
        )
        for match in matcher:
            # The normaliser of stored phones, so a number found in a chat matches the contact's phone.
            e164 = phone_e164(match.raw_string, region) or phonenumbers.format_number(
                match.number, phonenumbers.PhoneNumberFormat.E164
            )
            if e164 not in found:
                found.append(e164)
            if len(found) >= MAX_NUMBERS_PER_MESSAGE:
                break
    except Exception:  # libphonenumber on exotic input: what was found so far stands
        return found
    return found


# ---------------------------------------------------------------------------------------------------------------
# Emails

_EMAIL_ANGLE = re.compile(r"<([^<>]*)>")
_EMAIL_LOCAL = re.compile(r"[^\s@<>()\[\],;:\"\\]+")
_EMAIL_LABEL = re.compile(r"(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?", re.UNICODE)
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_YANDEX_DOMAINS = frozenset({"yandex.ru", "ya.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua"})


def email_key(raw: object, *, fold_provider: bool = False) -> str | None:
    """Return the email trimmed and lower-cased; with fold_provider, provider aliases folded.

    ``Ivan <Ivan@Mail.RU>`` and ``mailto:`` forms give the bare address. fold_provider drops ``+tags`` for every
    domain, dots for Gmail (and googlemail.com -> gmail.com), and Yandex's alias domains and dot/hyphen spelling.
    """
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_EMAIL_INPUT:
        return None
    text = _nfkc_casefold(_printable(raw)).strip()
    angle = _EMAIL_ANGLE.search(text)
    if angle:
        text = angle.group(1).strip()
    if text.startswith("mailto:"):
        text = text[len("mailto:"):]
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    domain = domain.rstrip(".")
    if not local or not _EMAIL_LOCAL.fullmatch(local) or local.startswith(".") or local.endswith("."):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_EMAIL_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():  # a bare IP "domain" is not an address a customer gives
        return None
    if fold_provider:
        local, domain = _provider_folded(local, domain)
    key = f"{local}@{domain}"
    return key if len(key) <= KEY_MAX_LENGTH else None


def email_key_folded(key: str) -> str | None:
    """Return an ``email_key`` (without folding) with provider aliases folded: what ``email_key`` gives with
    fold_provider for the raw address, without reading the address again."""
    local, domain = _provider_folded(*key.split("@", 1))
    folded = f"{local}@{domain}"
    return folded if len(folded) <= KEY_MAX_LENGTH else None


def _provider_folded(local: str, domain: str) -> tuple[str, str]:
    untagged = local.split("+", 1)[0]
    local = untagged or local
    if domain in _GMAIL_DOMAINS:
        local = local.replace(".", "") or local
        domain = "gmail.com"
    elif domain in _YANDEX_DOMAINS:
        local = local.replace(".", "-")
        domain = "yandex.ru"
    return local, domain


def _nfkc_casefold(text: str) -> str:
    # NFKC on both sides of casefold(): a few characters case-fold into a non-NFKC form.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


# ---------------------------------------------------------------------------------------------------------------
# The script-folding pipeline shared by person and company names

# Apostrophes inside a word join its halves (O'Brien, d'Artagnan); anyascii renders the Cyrillic soft and hard
# signs as an apostrophe too, so Наталья -> Natal'ya -> natalya.
_APOSTROPHES = re.compile(r"['’ʼ`´ʹʻ′]")
_WORD = re.compile(r"[^\W_]+")
_NOT_ASCII_ALNUM = re.compile(r"[^a-z0-9]+")
_CONSONANT = "b-df-hj-np-tv-z"

# Applied in order, repeatedly until nothing changes. Each rule folds spellings of ONE sound that different
# transliteration systems (GOST, ICAO passports, BGN, German, French, English habits) write differently.
_PHONETIC_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^ch(?=[rl])"), "k"),  # Christina / Kristina, Chloe
    (re.compile(r"tch"), "ch"),  # Tchaikovsky / Chaykovskiy
    (re.compile(r"sch"), "sh"),  # Schmidt / Шмидт (Shmidt)
    (re.compile(r"ph"), "f"),  # Sophia / Sofia
    (re.compile(r"kh"), "h"),  # Khrushchev / Hrushchev, Mikhail / Mihail
    (re.compile(r"th"), "t"),  # Thomas / Tomas
    (re.compile(r"ck"), "k"),  # Dickson / Dikson
    (re.compile(r"q"), "k"),
    (re.compile(r"c(?![eiyhzs])"), "k"),  # Marc / Mark, Victor / Viktor, Nicolas / Nikolas; not Cecilia, not ch
    (re.compile(r"ks"), "x"),  # Aleksandr / Alexander, Kseniya / Xenia
    (re.compile(r"w"), "v"),  # Wladimir / Vladimir, Petrow / Petrov
    (re.compile(rf"(?<=[{_CONSONANT}])[yj]o"), "e"),  # Pyotr / Petr, Fyodor / Fjodor / Fedor, Khrushchyov / ё = е
    (re.compile(r"[yj]"), "i"),  # й ~ y ~ i ~ j: Sergey / Sergei, Yulia / Julia / Iuliia, Tsoy / Tsoi
    (re.compile(r"(?<=[oe])ff$"), "v"),  # Smirnoff / Smirnov
    (re.compile(r"(?<=[dt])er$"), "r"),  # Alexander / Aleksandr, Peter / Petr
    # Dmitriy -> dmitrii -> dmitri = Dmitry; Mayya / Maya; Philipp / Filip. Letters only: digits are numbers
    # ("Sibir Telecom 773" is not "Sibir Telecom 73", "Vector 1552" not "Vector 1522").
    (re.compile(r"([a-z])\1+"), r"\1"),
    (re.compile(r"ie"), "e"),  # Yelena / Elena, Grigoryev / Grigoriev / Григорьев (Grigor'ev)
)
_FOLD_MAX_PASSES = 6


def transliterate(raw: str) -> str:
    """Return one word transliterated to lower-case ASCII letters and digits, without the phonetic folding."""
    return _NOT_ASCII_ALNUM.sub("", anyascii(_APOSTROPHES.sub("", raw)).lower())


# Kind 1 of the caching rule in docs/ARCHITECTURE.md: a bounded memo of a pure function (a bulk import folds
# the same first names and surnames again and again).
@lru_cache(maxsize=1 << 17)
def fold_token(raw: str) -> str:
    """Return one word script-, case-, accent- and spelling-folded (``Юлия``, ``Julia``, ``Yuliya`` -> ``iulia``).

    The result is a fixed point: ``fold_token(fold_token(w)) == fold_token(w)``. May be empty (an emoji).
    """
    token = transliterate(raw)
    for _ in range(_FOLD_MAX_PASSES):
        folded = token
        for pattern, replacement in _PHONETIC_RULES:
            folded = pattern.sub(replacement, folded)
        if folded == token:
            break
        token = folded
    return token


def fold_words(raw: str) -> list[str]:
    """Return the folded words of a text in their order (empty words dropped)."""
    return [folded for folded, _plain in word_forms(raw)]


def word_forms(raw: str) -> list[tuple[str, str]]:
    """Return each word of a text as (folded, plain): ``fold_token`` and the word only lower-cased, in its own
    script (a typo is one letter there, but may become two after folding: Князева / Кнгзева). Lower-cased, not
    case-folded: case folding spells ß as "ss", and a typo in "Heß" (Hes, Heс) was then two letters from "hess".
    Words that fold to nothing are dropped, as in ``fold_words``."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", raw))
    forms = []
    for word in _WORD.findall(text):
        folded = fold_token(word)
        if folded:
            forms.append((folded, word.lower()))
    return forms


# ---------------------------------------------------------------------------------------------------------------
# Person names

# Folded forms of the Cyrillic letters whose transliteration takes two letters: "Ю." or "Yu." is an initial.
_MULTI_LETTER_INITIALS = frozenset({"iu", "ia", "zh", "ch", "sh", "shch", "ts"})


def person_name_key(raw: object) -> str | None:
    """Return the name's words case-, accent- and script-folded and sorted, so word order does not matter.

    ``Иван Петров``, ``Ivan Petrov`` and ``PETROV ivan`` -> ``ivan petrov``; initials are kept as their folded
    letter (``Petrov I.`` -> ``i petrov``): use ``names_compatible`` to match them against full names. Titles
    and degrees (Mr, Dr., PhD, г-жа, тов.) are dropped.
    """
    words = _name_words(raw)
    if not words:
        return None
    key = " ".join(sorted(words))
    return key if len(key) <= KEY_MAX_LENGTH else None


# Titles and degrees say nothing about who a person is (Faker's en_US and ru_RU names carry them as well):
# they are dropped wherever they stand. Generational suffixes (Jr, Sr, II) are kept: they tell father from son.
_TITLES_TEXT = (
    "Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Madam", "MD", "DDS", "PhD", "DVM", "Esq",
    "господин", "госпожа", "тов", "товарищ", "гн", "гжа",
)
# Hyphenated Russian titles (г-н, г-жа) would otherwise read as two initials, "G. N.".
_HYPHENATED_TITLE = re.compile(r"(?<![^\W_])г\s*[-‐‑–]\s*(?:н|жа)(?![^\W_])", re.IGNORECASE)


def _name_words(raw: object) -> list[str]:
    return [folded for folded, _plain in name_word_forms(raw)]


def name_word_forms(raw: object) -> list[tuple[str, str]]:
    """Return a name's words as (folded, plain) pairs (``word_forms``) in their order, titles dropped."""
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_NAME_INPUT:
        return []
    return list(_name_word_forms(raw))


# Kind 1 of the caching rule in docs/ARCHITECTURE.md: a bounded memo of a pure function. One name is read three
# times in a row when a record is keyed (its key, its blocking keys, the scorer's reading of it).
@lru_cache(maxsize=4096)
def _name_word_forms(raw: str) -> tuple[tuple[str, str], ...]:
    try:  # (the titles' pattern starts with the letter г)
        forms = word_forms(_HYPHENATED_TITLE.sub(" ", raw) if "г" in raw or "Г" in raw else raw)
    except Exception:
        return ()
    return tuple(form for form in forms if form[0] not in _FOLDED_TITLES or transliterate(form[1]) not in _TITLES)


# Titles are recognised as typed (transliterated, lower-cased), not by their folded form: the spelling rules fold
# real surnames onto a title ("Dyer" -> "dr", a typo "Dрrr" -> "dr", "Miss" and "Mis" -> "mis"), and a surname
# dropped as a title left "Ashley Dyer" with her first name alone.
_TITLES = frozenset(transliterate(title) for title in _TITLES_TEXT)
_FOLDED_TITLES = frozenset(fold_token(title) for title in _TITLES_TEXT)  # a first look, before transliterating


def is_initial(word: str) -> bool:
    """Tell whether a folded name word is an initial (``i``, or ``iu`` for Ю.)."""
    return len(word) == 1 or word in _MULTI_LETTER_INITIALS


def initial_matches(initial: str, word: str) -> bool:
    """Tell whether a folded initial can abbreviate a folded full word (``iu`` -> ``iulia``)."""
    if word.startswith(initial):
        return True
    # "c" folds to "k" on its own (C. = K.) but stays "c" in Cecilia.
    return initial == "k" and word.startswith("c")


def name_words(raw: object) -> list[str]:
    """Return a name's folded words, sorted (the words of ``person_name_key``); empty for garbage."""
    return sorted(_name_words(raw))


def names_compatible(a: object, b: object) -> bool:
    """Tell whether two names can be the same person: ``Petrov I.`` ~ ``Ivan Petrov`` ~ ``Иван Сергеевич Петров``.

    True when every word of the name with fewer words pairs off with a distinct word of the other, a full word
    with an equal word and an initial with a word it abbreviates (or the same initial), and at least one pair is
    two equal full words. Gendered forms are different words (``Petrova I.`` is not ``Ivan Petrov``).
    """
    words_a, words_b = name_words(a), name_words(b)
    if not words_a or not words_b:
        return False
    if len(words_a) > len(words_b):
        words_a, words_b = words_b, words_a
    if len(words_b) > 8:  # a pasted sentence, not a name: compare exactly
        return words_a == words_b
    return _pair_off(words_a, words_b, 0, [False] * len(words_b), False)


def _pair_off(short: list[str], long: list[str], index: int, used: list[bool], full_pair: bool) -> bool:
    if index == len(short):
        return full_pair
    word = short[index]
    for position, other in enumerate(long):
        if used[position]:
            continue
        if word == other:
            is_full = not is_initial(word)
        elif is_initial(word) and not is_initial(other) and initial_matches(word, other):
            is_full = False
        elif is_initial(other) and not is_initial(word) and initial_matches(other, word):
            is_full = False
        else:
            continue
        used[position] = True
        if _pair_off(short, long, index + 1, used, full_pair or is_full):
            return True
        used[position] = False
    return False


# Blocking: a name is put in one block per (full word, first letter of another word) pair.
_BLOCKING_MAX_WORDS = 6


def name_blocking_keys(raw: object) -> set[str]:
    """Return the blocking keys of a name: names that may be one person share at least one key.

    A key is ``word|x``: one full folded word (not an initial) and the first letter of ANOTHER word of the
    name (``ivan petrov`` -> ``ivan|p``, ``petrov|i``); a one-word name gives ``word|``.

    Trade-off: two names sharing a key are compared fuzzily, so keys must be coarse enough for near names to
    share one and fine enough for blocks to stay small. With this scheme
    - one typo anywhere except the first letter of a word keeps a shared key (the untouched word plus the
      first letter of the touched one); word order, transliteration variants, an added middle name or
      patronymic, and initials (``Petrov I.`` shares ``petrov|i``) all keep one too;
    - missed: a typo in the first letter of a word of a two-word name (Petrov / Vetrov), a merged or split word
      (IvanPetrov), and one-word names with a typo;
    - block size ~ (records with that word) x (share of them with another word starting with that letter).
      Measured on 1M Faker names (ru_RU + en_US, bench/bench_normalize.py): 3.9 keys per name, median block
      33, p99 523, largest 1,394 (smit|k), 429M pairs to compare in a full scan; 91% of one-typo duplicates
      share a block (11% even share the exact key). Two letters of the other word instead of one cut the
      pairs by 4x but recall to 84%, so one letter it is. The finder should cap the blocks it compares
      (skip or sample a block above its limit) rather than compare every pair of a giant one.
    """
    words = _name_words(raw)
    if not words:
        return set()
    # The longest words are the most telling; a pasted sentence would otherwise give dozens of keys.
    words = sorted(words, key=lambda word: (-len(word), word))[:_BLOCKING_MAX_WORDS]
    if len(words) == 1:
        return set() if is_initial(words[0]) else {f"{words[0]}|"}
    keys = set()
    for position, word in enumerate(words):
        if is_initial(word):
            continue
        for other_position, other in enumerate(words):
            if other_position != position:
                keys.add(f"{word}|{other[0]}")
    return {key for key in keys if len(key) <= KEY_MAX_LENGTH}


# ---------------------------------------------------------------------------------------------------------------
# Company names

# Legal forms, as typed (Latin or Cyrillic); they are compared after folding, so ООО, OOO and O.O.O. are one.
_LEGAL_FORMS_TEXT = (
    # Russia and neighbours
    "ООО", "ОАО", "ЗАО", "ПАО", "НАО", "АО", "ИП", "НКО", "ТОО", "ЧП", "ТОВ", "ОДО", "УП", "ГУП", "МУП", "ФГУП",
    "общество с ограниченной ответственностью",
    "акционерное общество",
    "открытое акционерное общество",
    "закрытое акционерное общество",
    "публичное акционерное общество",
    "непубличное акционерное общество",
    "индивидуальный предприниматель",
    "товарищество с ограниченной ответственностью",
    # English-speaking countries
    "LLC", "L.L.C.", "Inc", "Incorporated", "Ltd", "Limited", "Corp", "Corporation", "Co", "Company", "PLC",
    "LLP", "LP", "PC", "Pty", "Pte", "JSC", "PJSC", "CJSC", "OJSC",
    "limited liability company", "limited liability partnership", "public limited company",
    "private limited company", "limited company",
    # Europe
    "GmbH", "mbH", "AG", "KG", "OHG", "UG", "eG", "e.V.", "SE", "SA", "SAS", "SARL", "SNC", "SpA", "Srl", "BV",
    "NV", "Oy", "Oyj", "AB", "AS", "ASA", "ApS", "A/S", "sro", "s.r.o.", "Kft", "Zrt", "Sp. z o.o.", "z o.o.",
    "Gesellschaft mit beschränkter Haftung", "Aktiengesellschaft", "société anonyme",
    "besloten vennootschap", "naamloze vennootschap",
)
# A dotted abbreviation (L.L.C., S.A., O.O.O.) is one word.
_DOTTED_ABBREVIATION = re.compile(r"(?<![^\W_])(?:[^\W_]\.){2,}(?![^\W_])")


def _company_words(raw: str) -> list[str]:
    text = _DOTTED_ABBREVIATION.sub(lambda match: match.group(0).replace(".", ""), raw)
    return fold_words(text)


_LEGAL_FORMS: frozenset[tuple[str, ...]] = frozenset(
    tuple(words) for words in map(_company_words, _LEGAL_FORMS_TEXT) if words
)
# "Co" and "Company" end a name (Johnson & Co.), but begin one as a word of it (Co-op, Company Shop).
_LEADING_LEGAL_FORMS = _LEGAL_FORMS - {tuple(_company_words("Co")), tuple(_company_words("Company"))}
_LEGAL_FORM_MAX_WORDS = max(len(form) for form in _LEGAL_FORMS)


def _strip_legal_forms(words: list[str]) -> list[str]:
    """Drop legal forms at either end of the name, repeatedly (``GmbH & Co. KG``), longest form first."""
    start, end = _legal_form_bounds(words)
    return words[start:end]


def _legal_form_bounds(words: list[str]) -> tuple[int, int]:
    """Return (start, end) of the name's words between its leading and trailing legal forms."""
    start, end = 0, len(words)
    changed = True
    while changed and start < end:
        changed = False
        for size in range(min(_LEGAL_FORM_MAX_WORDS, end - start), 0, -1):
            if tuple(words[start:start + size]) in _LEADING_LEGAL_FORMS:
                start += size
                changed = True
                break
        for size in range(min(_LEGAL_FORM_MAX_WORDS, end - start), 0, -1):
            if tuple(words[end - size:end]) in _LEGAL_FORMS:
                end -= size
                changed = True
                break
    return start, end


def company_word_forms(raw: object) -> list[tuple[str, str]]:
    """Return the company name's words as (folded, plain) pairs (``word_forms``), legal forms dropped; the
    folded words joined are ``company_name_key``."""
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_NAME_INPUT:
        return []
    try:
        forms = word_forms(_DOTTED_ABBREVIATION.sub(lambda match: match.group(0).replace(".", ""), raw))
    except Exception:
        return []
    start, end = _legal_form_bounds([folded for folded, _plain in forms])
    return forms[start:end]


def company_name_key(raw: object) -> str | None:
    """Return the company name without legal form, quotes and punctuation, script-folded, words in order.

    ``ООО «Ромашка»``, ``Romashka LLC`` and ``"ROMASHKA", L.L.C.`` -> ``romashka``. A legal form is dropped only
    at the start or end of the name (a middle "Co" may be part of it); a name that is nothing but a legal form
    is not matched.
    """
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_NAME_INPUT:
        return None
    try:
        words = _strip_legal_forms(_company_words(raw))
    except Exception:
        return None
    key = " ".join(words)
    return key if key and len(key) <= KEY_MAX_LENGTH else None


# ---------------------------------------------------------------------------------------------------------------
# Messenger handles

# Channels people type for the same messenger.
_CHANNEL_ALIASES = {"tg": "telegram", "t.me": "telegram", "wa": "whatsapp", "wapp": "whatsapp"}
_CHANNEL = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_HANDLE_BODY = re.compile(r"[\w.-]+")
_CHAT_ID = re.compile(r"-?[\w.@-]+")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]{7,}")
_HANDLE_LINK = re.compile(
    r"(?:https?://)?(?:www\.)?(?P<host>t\.me|telegram\.me|telegram\.dog|wa\.me|viber\.click)/@?(?P<body>[^/?#\s]+)/?"
)
_LINK_CHANNELS = {"t.me": "telegram", "telegram.me": "telegram", "telegram.dog": "telegram", "wa.me": "whatsapp",
                  "viber.click": "viber"}


def handle_key(raw: object) -> str | None:
    """Return a messenger handle without '@' and case: ``telegram:@Ivan_P`` -> ``telegram:ivan_p``.

    The channel prefix is kept (and its aliases folded: ``tg:`` -> ``telegram:``); a chat id keeps its ``#``
    marker (``telegram:#123456``); a bare ``@Ivan`` gives ``ivan``; ``https://t.me/Ivan_P`` gives
    ``telegram:ivan_p``; a phone number as handle (WhatsApp, Viber) is put in E.164.
    """
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_HANDLE_INPUT:
        return None
    try:
        key = _handle_key(raw)
    except Exception:
        return None
    return key if key and len(key) <= KEY_MAX_LENGTH else None


def _handle_key(raw: str) -> str | None:
    text = _nfkc_casefold(_printable(raw)).strip()
    channel = ""
    link = _HANDLE_LINK.fullmatch(text)
    if link:
        channel, body = _LINK_CHANNELS[link.group("host")], link.group("body")
    else:
        prefix, colon, rest = text.partition(":")
        if colon and _CHANNEL.fullmatch(prefix.strip()):
            channel, body = prefix.strip(), rest.strip()
        else:
            body = text
    channel = _CHANNEL_ALIASES.get(channel, channel)
    if body.startswith("#"):
        chat_id = body[1:].strip()
        if not _CHAT_ID.fullmatch(chat_id):
            return None
        body = "#" + chat_id
    else:
        body = body.lstrip("@").strip()
        if _PHONE_LIKE.fullmatch(body):
            body = phone_e164(body) or "".join(ch for ch in body if ch.isdigit())
        elif not _HANDLE_BODY.fullmatch(body):
            return None
    if not body:
        return None
    return f"{channel}:{body}" if channel else body


# ---------------------------------------------------------------------------------------------------------------
# Any other text


def text_key(raw: object) -> str | None:
    """Return any text or number field trimmed, case-folded and with inner whitespace collapsed.

    Numbers and UUIDs (an id, a tax number typed as int) are keyed by their text; any other type is not matched.
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal, UUID)):
        return None
    try:
        if isinstance(raw, (float, Decimal)) and not math.isfinite(raw):
            return None
        text = raw if isinstance(raw, str) else str(raw)
        if not text or len(text) > _MAX_TEXT_INPUT:
            return None
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        key = " ".join(_printable(text).split())
    except Exception:
        return None
    return key if key and len(key) <= KEY_MAX_LENGTH else None


_WEBSITE = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/?#\s]*@)?(?P<host>[^/?#:\s]+)(?::\d+)?(?P<path>/[^?#\s]*)?.*")


def website_key(raw: object) -> str | None:
    """Return a website's host and path without scheme, ``www.``, port, query and trailing slash.

    ``https://www.Example.com/`` and ``example.com`` -> ``example.com``; ``example.com/shop`` stays distinct.
    """
    if not isinstance(raw, str) or not raw or len(raw) > _MAX_TEXT_INPUT:
        return None
    try:
        text = _nfkc_casefold(_printable(raw)).strip()
        match = _WEBSITE.fullmatch(text)
        if not match:
            return None
        host = match.group("host").strip(".")
        host = host.removeprefix("www.")
        labels = host.split(".")
        if len(labels) < 2 or not all(_EMAIL_LABEL.fullmatch(label) for label in labels):
            return None
        path = (match.group("path") or "").rstrip("/")
        key = host + path
    except Exception:
        return None
    return key if len(key) <= KEY_MAX_LENGTH else None


# ---------------------------------------------------------------------------------------------------------------
# Dates, numbers, identifiers, addresses (typed custom fields)

_DATE_PARTS = re.compile(r"\d+")


def date_key(raw: object) -> str | None:
    """Return a date as ISO ``YYYY-MM-DD``: 1956-04-09, 09.04.1956, 09/04/56, 19560409 (day first; month first
    when the day says so, 04/29/1956); impossible dates (31/31/2020) and years outside 1850–2100 are None."""
    from datetime import date, datetime

    if isinstance(raw, datetime):
        raw = raw.date()
    if isinstance(raw, date):
        parsed = raw
    else:
        if not isinstance(raw, str) or len(raw) > 64:
            return None
        parts = _DATE_PARTS.findall(raw)
        try:
            if len(parts) == 1 and len(parts[0]) == 8:
                year, month, day = int(parts[0][:4]), int(parts[0][4:6]), int(parts[0][6:])
            elif len(parts) == 3 and len(parts[0]) == 4:
                year, month, day = (int(part) for part in parts)
            elif len(parts) == 3 and len(parts[2]) in (2, 4):
                day, month, year = (int(part) for part in parts)
                if len(parts[2]) == 2:
                    year += 2000 if year < 30 else 1900
                if month > 12 >= day:
                    day, month = month, day
            else:
                return None
            parsed = date(year, month, day)
        except (ValueError, OverflowError):
            return None
    if not 1850 <= parsed.year <= 2100:
        return None
    return parsed.isoformat()


_NUMBER_TEXT = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def number_key(raw: object) -> str | None:
    """Return a number in plain form: ``1 015,50``, ``1015.5`` and ``1015.50`` are ``1015.5``; text is None."""
    if isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, (int, Decimal)):
            value = Decimal(raw)
        elif isinstance(raw, float):
            if not math.isfinite(raw):
                return None
            value = Decimal(str(raw))
        elif isinstance(raw, str) and len(raw) <= 64:
            text = "".join(raw.split()).replace("\u00a0", "")
            if not _NUMBER_TEXT.fullmatch(text):
                return None
            value = Decimal(text.replace(",", "."))
        else:
            return None
        if not value.is_finite():
            return None
        key = format(value.normalize(), "f")
    except Exception:
        return None
    return key if len(key) <= 64 else None


def identifier_key(raw: object) -> str | None:
    """Return an identifier (a passport, a contract, a SKU) upper-cased with spaces, dashes and dots dropped:
    ``ab-123 45`` and ``AB12345`` are one."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    text = str(raw)
    if len(text) > _MAX_TEXT_INPUT:
        return None
    key = "".join(ch for ch in _nfkc_casefold(_printable(text)) if ch.isalnum()).upper()
    return key if key and len(key) <= KEY_MAX_LENGTH else None


def address_key(raw: object) -> str | None:
    """Return an address as folded words in their order (script, case and punctuation folded)."""
    if not isinstance(raw, str) or len(raw) > _MAX_TEXT_INPUT:
        return None
    try:
        key = " ".join(fold_words(raw))
    except Exception:
        return None
    return key if key and len(key) <= KEY_MAX_LENGTH else None


# ---------------------------------------------------------------------------------------------------------------
# By registry field kind

# The normaliser of each kind a registered MatchField declares (dedup.registry): the index, the merge engine
# (uniting contact rows) and the compare screen all key a value through this one table.
KIND_KEYS = {
    "phone": phone_e164,
    "email": email_key,
    "person_name": person_name_key,
    "company_name": company_name_key,
    "handle": handle_key,
    "website": website_key,
    "text": text_key,
    "date": date_key,
    "number": number_key,
    "identifier": identifier_key,
    "address": address_key,
}


def kind_key(kind: str, raw: object) -> str | None:
    """Return the key of a value of a field of this registry kind; a kind not in KIND_KEYS is keyed as text."""
    return KIND_KEYS.get(kind, text_key)(raw)


def match_key(kind: str, raw: object, *, fold: bool = False, placeholders: frozenset[str] | None = None) -> str | None:
    """Return the match key of a value (kind_key; emails provider-folded with fold), or None for a placeholder
    (is_placeholder) or a value that cannot be matched: the index's keys are made here."""
    if is_placeholder(raw, placeholders):
        return None
    if kind == "email":
        return email_key(raw, fold_provider=fold)
    return kind_key(kind, raw)


# ---------------------------------------------------------------------------------------------------------------
# Placeholders

# Values that mean "not filled in" in real exports (Excel, pandas, web forms); compared case-folded and trimmed.
# The administrator edits the list (dedup.models.MatchSettings, seeded with this one); an entry ending in * is a
# prefix (noemail@*).
DEFAULT_PLACEHOLDERS = frozenset({
    "nan", "none", "null", "nil", "na", "n/a", "n.a.", "n\\a", "unknown", "unknow", "not known", "not specified",
    "undefined", "empty", "test", "tbd", "-", "--", "---", "?", "??", ".", "x", "xx", "xxx", "0", "00", "000",
    "0000", "00000", "000000", "0000000", "00000000", "no", "no name", "noname", "no email", "no phone",
    "нет", "неизвестно", "не указано", "не указан", "нет данных", "без имени", "аноним",
})
DEFAULT_PLACEHOLDERS = DEFAULT_PLACEHOLDERS | frozenset({"noemail@*", "no-email@*", "noreply@*", "no-reply@*"})

# The list in force in this process: the default until dedup.engine.match_settings loads the administrator's,
# which it does whenever the database says the list changed (kind 3 of the caching rule in
# docs/ARCHITECTURE.md: rows kept per process, checked against a version stored in the index's kinds, which
# every write of keys verifies). Pure callers may pass a list of their own instead.
_active_placeholders: frozenset[str] = DEFAULT_PLACEHOLDERS


def use_placeholders(values: frozenset[str]) -> None:
    """Make these the placeholders of this process (dedup.engine.match_settings calls it)."""
    global _active_placeholders
    _active_placeholders = frozenset(values)


def active_placeholders() -> frozenset[str]:
    return _active_placeholders


def placeholder_entry(raw: str) -> str:
    """Return a placeholder as it is compared: case-folded, inner whitespace collapsed."""
    return " ".join(str(raw).split()).casefold()


@lru_cache(maxsize=8)  # kind 1: a memo of a pure function of the (few) lists in use
def _compiled(placeholders: frozenset[str]) -> tuple[tuple[str, ...], int, frozenset[str]]:
    """Return the prefix entries (those ending in *), the length of the longest entry, and the first
    characters of the prefix entries."""
    prefixes = tuple(sorted(entry[:-1] for entry in placeholders if entry.endswith("*") and len(entry) > 1))
    return prefixes, max((len(entry) for entry in placeholders), default=0), frozenset(p[0] for p in prefixes)


def is_placeholder(raw: object, placeholders: frozenset[str] | None = None) -> bool:
    """Tell whether a raw value means "not filled in": None, NaN, an entry of the list (case-folded; one ending
    in * as a prefix), or one character repeated (1111111, ---). The process's list unless one is given.

    Every key the index writes asks, so the common value (longer than any entry, several different letters,
    no prefix entries) is told apart before any folding."""
    if raw is None:
        return True
    if isinstance(raw, float) and raw != raw:  # NaN from pandas
        return True
    if not isinstance(raw, str):
        return False
    if placeholders is None:
        placeholders = _active_placeholders
    prefixes, longest, starts = _compiled(placeholders)
    if len(raw) > longest + 4 and (len(set(raw[:8])) > 3 or len(set(raw)) > 3):  # the head usually tells
        # Several different characters (not one repeated) and longer than any entry: only a prefix can match,
        # and the value's first characters tell (the first alone, case-folded on its own as casefold() folds
        # each character alone, rules most values out: a phone's "+", a name's capital).
        text = raw.lstrip()
        if not prefixes or not text or text[0].casefold()[:1] not in starts:
            return False
        return placeholder_entry(text[: longest + 8]).startswith(prefixes)
    text = placeholder_entry(raw) if len(raw) <= 512 else ""
    if not text:
        return not raw.strip()
    if text in placeholders:
        return True
    if prefixes and text.startswith(prefixes):
        return True
    compact = text.replace(" ", "")
    return len(compact) >= 3 and compact.count(compact[0]) == len(compact)  # one character repeated
