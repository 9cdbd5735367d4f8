"""The scoring blocking keys of the match-key index (kind ``_score``): who the scored matcher compares a record with.

Rules look candidates up by their own keys (a phone, an email, a name's blocking key). The scored matcher needs
candidates the rules never meet: "Micheal Smith, Acme LLC" and "Michael Smith, Acme Inc" share no phone, email or
normalised name. Each record of an entity the scorer serves (one with a person's or a company's name,
``scorable``) gets a few keys of kind ``_score``, made with the scorer's own readers (scoring/comparisons.py),
so what it compares and what brings records together agree:

- ``n:<the name's sounds>``: every word of the name by its phonetic code, sorted (Micheal / Michael Smith);
- ``nc:<word token>|<initial>|<company>``: one word of the name (its phonetic code, or its group of first-name
  variants: Jeffrey / Geoffrey) with the first letter of another word of it, at one company without its legal
  form (Acme LLC = Acme Inc): "Smith, M." at Acme;
- ``c:<company>``: the company alone (a company's own records, or a record with no person's name).

A key held by more than ``MAX_BLOCK`` records (a common name, a big company) is not looked up alone: the finder
skips it, as rules skip a fuzzy block over rules.MAX_FUZZY_BLOCK; the composite ``nc:`` key of a surname at that
company is still small. Measured keys per customer: 5 to 9.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.schema import KIND_TYPES
from dedup.registry import EntitySpec, MatchField

SCORE_KIND = "_score"
# Holders of a scoring key above which it is not looked up alone (a common name, a big company): the finder
# scores every candidate, so this bounds its work on a card and on a change-list page of 100 records.
MAX_BLOCK = 30
# The name's sounds alone (``n:``) is looked up only while this few records hold it: namesakes at other companies
# are rarely the same person (the score then says no), and scoring them cost most of a change-list page's time
# (bench_finder, 50,000 customers: ~40 candidates per record with the n: keys at 30, a few at 10). A same name at
# a company spelled differently is still found when the name is that rare.
MAX_NAME_BLOCK = 10
# Candidates scored per record at most (those sharing the most scoring keys with it first): the blocks above bound
# each key, this bounds their union, so a card and a change-list page of 100 score a bounded number of pairs.
MAX_CANDIDATES = 50


def block_limit(key: str) -> int:
    """Holders of a scoring key above which it is not looked up alone."""
    return MAX_NAME_BLOCK if key.startswith("n:") else MAX_BLOCK
# Index keys are at most this long (MatchKey.key).
_KEY_MAX = 255
_MAX_WORDS = 4


def name_fields(spec: EntitySpec) -> list[MatchField]:
    """The person-name fields the keys read: the full name when registered, else every person-name field."""
    names = [field for field in spec.fields if field.kind == "person_name"]
    full = [field for field in names if field.name == "full_name"]
    return full or names


def company_fields(spec: EntitySpec) -> list[MatchField]:
    return [field for field in spec.fields if field.kind == "company_name"]


def scorable(spec: EntitySpec) -> bool:
    """Tell whether the scored matcher decides for this entity: it has a person's or a company's name.

    Deals and orders are left to their rules: a deal is the same deal only for the same customer and service,
    and an order with the same phone is most often a repeat purchase, which must never be merged.
    """
    return bool(spec.identity_field) and bool(name_fields(spec) or company_fields(spec))


def fields(spec: EntitySpec) -> list[MatchField]:
    """The registered fields the keys read."""
    return [*name_fields(spec), *company_fields(spec)] if scorable(spec) else []


def columns(spec: EntitySpec) -> set[str] | None:
    """The model field paths the keys read (None when one field does not declare them)."""
    found: set[str] = set()
    for field in fields(spec):
        if field.columns is None:
            return None
        found.update(field.columns)
    return found


def prefetch(spec: EntitySpec) -> set[str]:
    return {path for field in fields(spec) for path in field.prefetch}


def rows(spec: EntitySpec, values: Mapping[str, Iterable[object]]) -> list[tuple[str, str, str]]:
    """Return the (kind, key, value) index rows of a record's scoring keys from its values {field: [raw]}."""
    if not scorable(spec):
        return []
    people = [item for field in name_fields(spec) for item in (_prepared(c.PERSON_NAME, values.get(field.name)))]
    companies = [item for field in company_fields(spec) for item in _prepared(c.COMPANY_NAME, values.get(field.name))]
    found: dict[str, str] = {}
    if not people:
        # A company's own records (or people without a name): the company alone. People are looked up by a word
        # of their name at the company instead: all the colleagues of a card would be scored otherwise.
        for company in companies:
            found["c:" + company.key] = company.key
    for person in people:
        found["n:" + person.phonetic] = person.key
        for word_token, initial in sorted(_word_tokens(person)):  # sorted: the rows' order is not the hash's
            for company in companies:
                found[f"nc:{word_token}|{initial}|{company.key}"] = person.key
    return [(SCORE_KIND, key, value[:_KEY_MAX]) for key, value in found.items() if key and len(key) <= _KEY_MAX]


def _prepared(field_type: str, raw_values) -> tuple:
    return c.prepare(field_type, [value for value in (raw_values or []) if value not in (None, "")]) or ()


def _word_tokens(person: c.Person) -> set[tuple[str, str]]:
    """(a word's token, the first letter of another word of the name): the token is the word's phonetic code or
    its group of name variants (Jeffrey and Geoffrey share a group). With the other word's initial a colleague
    who only shares a first name (or a surname) with the record is not a candidate: ~47 candidates per record of
    a change-list page without it, a handful with it (bench_finder, 50,000 customers)."""
    tokens: set[tuple[str, str]] = set()
    words = sorted(zip(person.words, person.groups), key=lambda item: (-len(item[0]), item[0]))[:_MAX_WORDS]
    for word, groups in words:
        if len(word) < 2:
            continue
        initials = {other[0] for other, _groups in words if other != word} or {""}
        for initial in initials:
            tokens.add(("p" + c.phonetic_key(word), initial))
            if groups:
                tokens.add(("g%d" % min(groups), initial))
    return tokens


def index_kinds(spec: EntitySpec) -> set[str]:
    """The index kinds the scored matcher reads for an entity: its scoring keys, and the normalised keys of every
    field it compares (their values are what it scores; see dedup.engine.decide)."""
    if not scorable(spec):
        return set()
    from dedup.engine.scoring.schema import entity_schema

    return {SCORE_KIND, *(field.name for field in entity_schema(spec))}


def field_type(match_field: MatchField) -> str | None:
    """The scoring type of a registered field (None: the scorer does not compare it)."""
    return KIND_TYPES.get(match_field.kind)
