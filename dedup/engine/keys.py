"""Compute the match keys of records: for each field the rules need, its normalised, folded or blocking keys."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

import phonenumbers
from django.db import models
from django.utils import timezone

from dedup import registry
from dedup.engine import normalize, score_keys, similarity
from dedup.registry import EntitySpec, MatchField

logger = logging.getLogger(__name__)

KEY_MAX_LENGTH = 255
VALUE_MAX_LENGTH = 255

# Kind suffixes and prefixes of the index rows (see MatchKey.kind).
BLOCK_SUFFIX = ":block"
FOLD_SUFFIX = ":fold"
STAGE_KIND = "_stage"
# When a record was placed (EntitySpec.time_field): the key is the epoch second, zero-padded so that the index's
# text order is the time order; the value is the moment in ISO format.
TIME_KIND = "_time"
TIME_KEY_DIGITS = 12
# The scored matcher's blocking keys (dedup.engine.score_keys), read from several fields at once.
SCORE_KIND = score_keys.SCORE_KIND
EQUAL_PREFIX = "_eq:"
STAGE_OPEN = "open"
STAGE_CLOSED = "closed"

# Registry field kinds whose keys are contact data: one of them may be used by many people (an office
# switchboard, info@...), which the finder recognises from the data (see rules.SHARED_KEY_MIN_PEOPLE).
CONTACT_KINDS = frozenset({"phone", "email", "handle"})
# Registry field kinds a fuzzy condition can compare.
FUZZY_KINDS = frozenset({"person_name", "company_name", "text", "website", "address"})

def norm_kind(field_name: str) -> str:
    return field_name


def fold_kind(field_name: str) -> str:
    return field_name + FOLD_SUFFIX


def block_kind(field_name: str) -> str:
    return field_name + BLOCK_SUFFIX


def equal_kind(field_name: str) -> str:
    return EQUAL_PREFIX + field_name


def field_of_kind(kind: str) -> tuple[str, str]:
    """Split an index kind into (field name, mode): "norm", "fold", "block", "stage", "time" or "equal"."""
    if kind == STAGE_KIND:
        return "", "stage"
    if kind == TIME_KIND:
        return "", "time"
    if kind == SCORE_KIND:
        return "", "score"
    if kind.startswith(EQUAL_PREFIX):
        return kind[len(EQUAL_PREFIX) :], "equal"
    if kind.endswith(BLOCK_SUFFIX):
        return kind[: -len(BLOCK_SUFFIX)], "block"
    if kind.endswith(FOLD_SUFFIX):
        return kind[: -len(FOLD_SUFFIX)], "fold"
    return kind, "norm"


def normalized(field_kind: str, raw: object, *, fold: bool = False) -> str | None:
    """Return the normalised key of one value of a field of this registry kind, or None (never raises)."""
    try:
        key = normalize.match_key(field_kind, raw, fold=fold)
    except Exception:  # a normaliser must never take a save down; the value is simply not matched
        logger.exception("Normaliser %s failed on %r", field_kind, raw)
        return None
    if not key or len(key) > KEY_MAX_LENGTH:
        return None
    return key


def blocking_keys(field_kind: str, raw: object, key: str) -> set[str]:
    """Return the blocking keys of a value: values that may be similar share at least one."""
    if field_kind == "person_name":
        try:
            keys = normalize.name_blocking_keys(raw)
        except Exception:
            logger.exception("Blocking keys failed on %r", raw)
            keys = set()
        return {block for block in keys if len(block) <= KEY_MAX_LENGTH}
    # Company names and texts: each word of three letters or more, and the first four letters of the whole,
    # so a typo leaves at least one shared key in all but one-word values.
    words = [word for word in key.split() if len(word) >= 3]
    keys = {f"w:{word}" for word in words[:6]}
    compact = key.replace(" ", "")
    if compact:
        keys.add(f"p:{compact[:4]}")
    return {block for block in keys if len(block) <= KEY_MAX_LENGTH}


def score(field_kind: str, a: str, b: str) -> int:
    """Return how alike two normalised values of a field of this registry kind are, 0..100."""
    if a == b:
        return 100
    return similarity.similarity(field_kind, a, b)


def collapse(value: object) -> str:
    """Return a value as typed, with surrounding and repeated whitespace dropped (the "exact" comparison)."""
    return " ".join(str(value).split())[:VALUE_MAX_LENGTH]


def display(field: MatchField, key: str, value: str) -> str:
    """Return a key as people write it: phones in international format, other fields as typed."""
    if field.kind == "phone":
        return phone_display(key)
    if field.kind in ("email", "handle"):
        return key
    return value or key


def phone_display(key: str) -> str:
    """Return an E.164 key in international format ("+7 912 345-67-89"); a scan formats thousands of them, so
    the number is built from the key's digits instead of being parsed again (half the cost)."""
    number = None
    if key.startswith("+") and key[1:].isdigit():
        for length in (1, 2, 3):
            code = int(key[1 : 1 + length])
            national = key[1 + length :]
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and national and not national.startswith("0"):
                number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
                break
    try:
        if number is None:
            number = phonenumbers.parse(key, None)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except Exception:
        return key


@dataclass(frozen=True)
class KeyRow:
    """One row of the index for one record."""

    kind: str
    key: str
    value: str


def read_values(field: MatchField, record: models.Model) -> list[object]:
    """Return the values of one field of a record; a reader that fails gives none (logged)."""
    try:
        return [value for value in (field.read(record) or []) if value not in (None, "")]
    except Exception:
        if record.pk is not None:  # an unsaved record has no related rows yet, and Django refuses to look
            logger.exception("Reading %s of %r failed", field.name, record)  # them up: nothing to log
        return []


def field_rows(field: MatchField, values: Iterable[object], modes: set[str]) -> list[KeyRow]:
    """Return the index rows of one field's values for the modes wanted ("norm", "fold", "block")."""
    rows = []
    for raw in values:
        key = normalized(field.kind, raw)
        if key is None:
            continue
        value = collapse(raw)
        if "norm" in modes:
            rows.append(KeyRow(norm_kind(field.name), key, value))
        if "fold" in modes and field.kind == "email":
            folded = normalized(field.kind, raw, fold=True)
            if folded:
                rows.append(KeyRow(fold_kind(field.name), folded, value))
        if "block" in modes:
            # The blocking row carries the normalised value: fuzzy scoring reads it without another lookup.
            for block in blocking_keys(field.kind, raw, key):
                rows.append(KeyRow(block_kind(field.name), block, key[:VALUE_MAX_LENGTH]))
    return rows


def modes_by_field(kinds: Iterable[str]) -> dict[str, set[str]]:
    """Group index kinds by field name: {"email": {"norm", "fold"}, "_stage": ..., ...}."""
    by_field: dict[str, set[str]] = {}
    for kind in kinds:
        name, mode = field_of_kind(kind)
        by_field.setdefault(name, set()).add(mode)
    return by_field


@dataclass(frozen=True)
class _Plan:
    """What to read from each record for a set of kinds, worked out once per batch rather than per record."""

    fields: tuple[tuple[MatchField, frozenset[str], bool], ...]  # (field, modes, keys stored by the model)
    stage: bool
    equal: tuple[str, ...]
    time: bool = False
    score: bool = False
    score_fields: tuple[MatchField, ...] = ()


# Derived from the registry alone (kind 2 of the caching rule in docs/ARCHITECTURE.md): keyed by the registry's
# version, so a re-registered entity never gets an older spec's plan; bounded, as kinds sets come from rules.
_plans: dict[tuple, _Plan] = {}


def _plan(spec: EntitySpec, kinds: Iterable[str]) -> _Plan:
    frozen = frozenset(kinds)
    cache_key = (registry.version, spec.key, frozen)
    plan = _plans.get(cache_key)
    if plan is None:
        fields, stage, equal, time, score = [], False, [], False, False
        for name, modes in sorted(modes_by_field(frozen).items()):
            if "stage" in modes:
                stage = True
            if "time" in modes:
                time = bool(spec.time_field)
            if "score" in modes:
                score = True
            if "equal" in modes:
                equal.append(name)
            modes = frozenset(modes - {"stage", "equal", "time", "score"})
            if modes and name and spec.has_field(name):
                field = spec.field(name)
                fields.append((field, modes, field.read_keys is not None and modes == {"norm"}))
        plan = _Plan(tuple(fields), stage, tuple(equal), time, score, tuple(score_keys.fields(spec)) if score else ())
        if len(_plans) > 256:
            _plans.clear()
        _plans[cache_key] = plan
    return plan


def record_rows(spec: EntitySpec, record: models.Model, kinds: Iterable[str]) -> list[KeyRow]:
    """Return the index rows of one record for the given kinds; an archived record has none."""
    if spec.archived_attr and getattr(record, spec.archived_attr, False):
        return []
    plan = _plan(spec, kinds)
    rows: list[KeyRow] = []
    if plan.stage:
        rows.extend(_stage_rows(spec, record))
    if plan.time:
        moment = getattr(record, spec.time_field, None)
        if moment is None and record.pk is None:
            moment = timezone.now()  # a record being typed is placed now (auto_now_add fills it on save)
        rows.extend(time_rows(moment))
    for name in plan.equal:
        rows.extend(equal_rows(name, read_equal(spec, name, record)))
    read: dict[str, list[object]] = {}
    for field, modes, stored in plan.fields:
        if stored:
            rows.extend(stored_rows(field, record))
        else:
            values = read[field.name] = read_values(field, record)
            rows.extend(field_rows(field, values, modes))
    if plan.score:
        # (a value read above is not read again: the full name is built from three columns each time)
        values = {
            field.name: read[field.name] if field.name in read else read_values(field, record)
            for field in plan.score_fields
        }
        rows.extend(KeyRow(*row) for row in score_keys.rows(spec, values))
    return dedupe(rows)


def stored_rows(field: MatchField, record: models.Model) -> list[KeyRow]:
    """Return the rows of a field whose keys the model stores already normalised (MatchField.read_keys)."""
    try:
        pairs = list(field.read_keys(record) or [])
    except Exception:
        if record.pk is not None:
            logger.exception("Reading the keys of %s of %r failed", field.name, record)
        return []
    return [
        KeyRow(norm_kind(field.name), key, collapse(value))
        for key, value in pairs
        if key and isinstance(key, str) and len(key) <= KEY_MAX_LENGTH and not normalize.is_placeholder(value)
    ]


def values_rows(
    spec: EntitySpec,
    values: dict[str, Iterable[object]],
    kinds: Iterable[str],
    *,
    stage: models.Model | None = None,
    equal: dict[str, object] | None = None,
    moment: datetime | None = None,
) -> list[KeyRow]:
    """Return the index rows data not saved yet would have (an incoming lead checked before it is created);
    `moment` places it in time (entities with a time field; data not saved yet is placed now by default)."""
    rows: list[KeyRow] = []
    for name, modes in modes_by_field(kinds).items():
        if "stage" in modes and stage is not None:
            rows.append(_stage_row(spec, stage))
        if "time" in modes and spec.time_field:
            rows.extend(time_rows(moment or timezone.now()))
        if "score" in modes:
            rows.extend(KeyRow(*row) for row in score_keys.rows(spec, values))
        if "equal" in modes:
            rows.extend(equal_rows(name, [(equal or {}).get(name)]))
        modes = modes - {"stage", "equal", "time", "score"}
        if modes and name in values and spec.has_field(name):
            rows.extend(field_rows(spec.field(name), [v for v in values[name] if v not in (None, "")], modes))
    return dedupe(rows)


def read_equal(spec: EntitySpec, name: str, record: models.Model) -> list[object]:
    if spec.has_field(name):
        return read_values(spec.field(name), record)
    return [getattr(record, name, None)]


def equal_rows(name: str, values: Iterable[object]) -> list[KeyRow]:
    rows = []
    for value in values:
        key = normalize.text_key(value) if value not in (None, "") else None
        if key:
            rows.append(KeyRow(equal_kind(name), key, collapse(value)))
    return rows


def time_key(moment: datetime) -> str:
    """Return the index key of a moment: its epoch second, zero-padded (text order is time order)."""
    return str(int(moment.timestamp())).zfill(TIME_KEY_DIGITS)


def time_rows(moment: object) -> list[KeyRow]:
    """Return the time row of a record placed at this moment (none for a missing or unreadable one)."""
    if not isinstance(moment, datetime):
        return []
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, dt_timezone.utc)
        return [KeyRow(TIME_KIND, time_key(moment), moment.isoformat()[:VALUE_MAX_LENGTH])]
    except (OverflowError, ValueError, OSError):
        return []


def seconds_apart(first: str, second: str) -> int | None:
    """Return how many seconds lie between two time keys, or None when one is not a time key."""
    try:
        return abs(int(first) - int(second))
    except (TypeError, ValueError):
        return None


def _stage_rows(spec: EntitySpec, record: models.Model) -> list[KeyRow]:
    if not spec.stage_field:
        return []
    stage = getattr(record, spec.stage_field, None)
    return [_stage_row(spec, stage)] if stage is not None else []


def _stage_row(spec: EntitySpec, stage: models.Model) -> KeyRow:
    closed = bool(spec.stage_closed and spec.stage_closed(stage))
    return KeyRow(STAGE_KIND, str(stage.pk), STAGE_CLOSED if closed else STAGE_OPEN)


def dedupe(rows: list[KeyRow]) -> list[KeyRow]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for row in rows:
        if (row.kind, row.key) not in seen:
            seen.add((row.kind, row.key))
            unique.append(row)
    return unique


def loading_paths(spec: EntitySpec, kinds: Iterable[str]) -> tuple[list[str], list[str]]:
    """Return (select_related, prefetch_related) paths that load what these kinds read, in a constant query count."""
    select: set[str] = set()
    prefetch: set[str] = set()
    for name, modes in modes_by_field(kinds).items():
        if "stage" in modes and spec.stage_field:
            select.add(spec.stage_field)
        paths = set(score_keys.prefetch(spec)) if "score" in modes else set()
        if name and spec.has_field(name):
            paths.update(spec.field(name).prefetch)
        for path in sorted(paths):
            if _is_forward_single(spec.model, path):
                select.add(path)
            else:
                prefetch.add(path)
    return sorted(select), sorted(prefetch)


def loading_columns(spec: EntitySpec, kinds: Iterable[str]) -> set[str] | None:
    """Return the field paths these kinds read (MatchField.columns, the stage), or None when one is not declared."""
    columns: set[str] = set()
    for name, modes in modes_by_field(kinds).items():
        if "stage" in modes and spec.stage_field:
            columns.add(spec.stage_field)
        if "time" in modes and spec.time_field:
            columns.add(spec.time_field)
        if "score" in modes:
            score_columns = score_keys.columns(spec)
            if score_columns is None:
                return None
            columns.update(score_columns)
        if not name:
            continue
        if not spec.has_field(name) or spec.field(name).columns is None:
            return None
        columns.update(spec.field(name).columns)
    if spec.archived_attr:
        columns.add(spec.archived_attr)
    return columns


def _is_forward_single(model: type[models.Model], path: str) -> bool:
    current = model
    for part in path.split("__"):
        try:
            field = current._meta.get_field(part)
        except Exception:
            return False
        if not (field.is_relation and (field.many_to_one or field.one_to_one) and field.concrete):
            return False
        current = field.related_model
    return True
