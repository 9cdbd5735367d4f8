"""Whether two records of an entity are duplicates: the one decision every caller asks (issue 16).

A pair is a duplicate when
  (a) a hard rule matches it (an active Rule of kind "duplicate": "always a duplicate when these conditions
      hold", in its stage scope, with its must-be-equal field), or
  (b) the entity has a learned scoring model and the pair's match probability reaches the entity's review
      threshold (ScoringModel.threshold), both records in the scope of one of the entity's active rules
      (its stages, its must-be-equal field; every open stage when the entity has no rule),
and in both cases only when
  (c) no veto holds (an active Rule of kind "veto": one of its fields filled in on both sides and different
      after normalisation) and the pair is not marked "not a duplicate" (the callers leave those pairs out
      before asking).

The finder (card, change-list counts and their stored figures, the warning while typing, the intake) decides
its candidates with these pieces in a batch: `vetoed`, rules.evaluate, `score_batch` and `pair_decision` for
the pairs only the score speaks for; the scan's groups obey `vetoed` and `in_frame` (dedup/engine/scan_scored.py).
The scorer's values come from the match-key index (the normalised keys of the fields it compares, and their
values as typed), so scoring a card's candidates needs no query of the records.

Which entities are scored: those with a person's or company's name (dedup.engine.score_keys.scorable).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import phonenumbers

from dedup import messages
from dedup.engine import keys, rules, score_keys
from dedup.engine.rules import CompiledRule, RecordKeys, RuleMatch
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import matcher
from dedup.engine.scoring.explain import Reason
from dedup.engine.scoring.learned import learned_model, model_stamp
from dedup.engine.scoring.model import Model
from dedup.messages import Message
from dedup.models import Condition
from dedup.registry import EntitySpec

# Reasons of a scored match put in its words (the strongest evidence for it).
WHY_REASONS = 3


@dataclass(frozen=True)
class Scorer:
    """An entity's learned model ready to score pairs read from the index, with its review threshold."""

    spec: EntitySpec
    schema: tuple[matcher.FieldSpec, ...]
    model: Model
    threshold: float

    @property
    def kinds(self) -> set[str]:
        """The index kinds scoring reads: the compared fields' normalised keys and the scoring keys."""
        return score_keys.index_kinds(self.spec)


@dataclass(frozen=True)
class Scored:
    """One pair's match probability and each field's contribution, strongest first."""

    probability: float
    reasons: tuple[Reason, ...] = ()

    @property
    def percent(self) -> int:
        """Whole percent rounded down: 0.999 is "99%", never "100%" for a guess."""
        return min(99, math.floor(self.probability * 100))

    def why(self) -> list[str]:
        """Each field's contribution in the reader's language."""
        return [reason.text() for reason in self.reasons]

    def message(self) -> Message:
        """The match in words, stored as a message id ("87% match: company name: the same, full name: ...")."""
        positive = [reason for reason in self.reasons if reason.weight > 0][:WHY_REASONS] or list(self.reasons[:1])
        why = [{"msg": reason.message, "params": {"field": {"t": reason.field}}} for reason in positive]
        return Message(messages.SCORED_MATCH, percent=self.percent, why=why)


# ---------------------------------------------------------------------------------------------------------------
# The learned model, per process (dedup.engine.scoring.learned: one loader for every caller)


def scorer_for(spec: EntitySpec, compiled: rules.RuleList | None = None) -> Scorer | None:
    """Return the entity's scorer, or None (not scored, or no model learned yet).

    ``compiled`` (rules.active_rules) carries the model's stamp read with the rules: then no query while the
    model is unchanged; else one. Two more when the model changed (its weights, once per process).
    """
    if not score_keys.scorable(spec):
        return None
    if compiled is not None and getattr(compiled, "stamp_known", False):
        stamp = compiled.scoring_stamp
    else:
        stamp = model_stamp(spec.key)
    if stamp is None:
        return None
    found = learned_model(spec, stamp)
    if found is None:
        return None
    # The threshold is read with the stamp on every call: a scorer is a few references, built anew each time.
    return Scorer(spec=spec, schema=found.schema, model=found.model, threshold=float(stamp[2]))


# ---------------------------------------------------------------------------------------------------------------
# Scoring records read from the index


def index_values(scorer: Scorer, record: RecordKeys) -> dict[str, list[str]]:
    """A record's values per compared field, from its index rows: phones by their E.164 key, the rest as typed."""
    values: dict[str, list[str]] = {}
    for field in scorer.schema:
        found = record.get(keys.norm_kind(field.name))
        if field.type == c.PHONE:
            values[field.name] = list(found)
        else:
            values[field.name] = [value or key for key, value in found.items()]
    return values


def score_pairs(scorer: Scorer, mine: RecordKeys, others: Mapping[int, RecordKeys], *,
                explain_at: float | None = None) -> dict[int, Scored]:
    """Score a record against each of the others: {other pk: Scored}, the reasons filled in for the pairs at or
    above ``explain_at`` (the threshold when not given; 0 explains every pair)."""
    records = {None: mine, **{("o", pk): other for pk, other in others.items()}}
    found = score_batch(scorer, records, [(None, ("o", pk)) for pk in others], explain_at=explain_at)
    return {pk: found[(None, ("o", pk))] for pk in others}


# Kind 1 of the caching rule in docs/ARCHITECTURE.md: memos of pure functions of their arguments, bounded.
@functools.lru_cache(maxsize=65536)
def _prepared(field_type: str, value: str) -> tuple | None:
    """One value read for comparison, as comparisons.prepare reads it."""
    if field_type == c.PHONE:
        item = _phone_item(value)
        if item is not None:
            return (item,)
    return c.prepare(field_type, value)


def _phone_item(key: str) -> c.Phone | None:
    """An index phone key (E.164) read without parsing it again: the country code is its first 1-3 digits that
    name a country (as keys.phone_display reads it), the national number the rest. Parsing costs 0.5 ms a number
    and a card scores dozens."""
    if not (key.startswith("+") and key[1:].isdigit()):
        return None
    for length in (1, 2, 3):
        code = int(key[1 : 1 + length])
        national = key[1 + length :]
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and national and not national.startswith("0"):
            return c.Phone(key, national)
    return None


def read_index_records(scorer: Scorer, rows: Sequence[Mapping[str, list[str]]]) -> matcher.Records:
    """The records' values read for comparison, as matcher.read_records reads them, each value read once per
    process (the same candidates come back on every card of a company)."""
    columns = []
    for field in scorer.schema:
        column: list[tuple | None] = []
        for values in rows:
            items: list = []
            for value in values.get(field.name, ())[: c.MAX_VALUES]:
                for item in _prepared(field.type, value) or ():
                    if item not in items:
                        items.append(item)
            column.append(tuple(items) if items else None)
        columns.append(column)
    return matcher.Records(list(scorer.schema), columns)


def score_batch(scorer: Scorer, records: Mapping[object, RecordKeys], pairs: Sequence[tuple[object, object]], *,
                explain_at: float | None = None) -> dict[tuple[object, object], Scored]:
    """Score many pairs of records (ids into ``records``) at once: each record is read once, the pairs are
    weighed together (a page of records and their candidates in one pass)."""
    if not pairs:
        return {}
    ids = list(dict.fromkeys(item for pair in pairs for item in pair))
    position = {item: index for index, item in enumerate(ids)}
    read = read_index_records(scorer, [index_values(scorer, records[item]) for item in ids])
    index = np.array([(position[a], position[b]) for a, b in pairs], dtype=np.int64)
    _weights, probabilities = matcher.score(scorer.model, read, index)
    bar = scorer.threshold if explain_at is None else explain_at
    found = {}
    for (a, b), probability in zip(pairs, probabilities.tolist()):
        if probability >= bar:
            probability, reasons = matcher.explain(scorer.model, read, position[a], position[b])
            found[(a, b)] = Scored(float(probability), tuple(reasons))
        else:
            found[(a, b)] = Scored(float(probability))
    return found


# ---------------------------------------------------------------------------------------------------------------
# The decision


def in_frame(compiled: Sequence[CompiledRule], mine: RecordKeys, other: RecordKeys) -> bool:
    """Tell whether a scored pair lies in the scope of one of the entity's active rules: both records in its
    stages and equal on its must-be-equal field (no rule: every open stage, nothing to be equal)."""
    frames = list(compiled)
    if not frames:
        if mine.stage is None and other.stage is None:
            return True
        return all(record.stage is not None and record.stage[1] == keys.STAGE_OPEN for record in (mine, other))
    for rule in frames:
        if not (rule.in_scope(mine) and rule.in_scope(other)):
            continue
        if rule.equal_field and mine.equal(rule.equal_field) != other.equal(rule.equal_field):
            continue
        return True
    return False


def veto_reason(veto: CompiledRule, mine: RecordKeys, other: RecordKeys) -> str | None:
    """Return why the veto rules this pair out (a field filled in on both sides and different), or None.

    Normalised and exact conditions: the two records share no key of the field (exact: no key typed alike).
    Fuzzy conditions: the best similarity of their values is below the threshold. A field missing on either
    side is no evidence: the veto does not hold on it.
    """
    if not (veto.in_scope(mine) and veto.in_scope(other)):
        return None
    for condition in veto.conditions:
        own_keys, other_keys = mine.get(condition.kind), other.get(condition.kind)
        if not own_keys or not other_keys:
            continue
        if condition.fuzzy:
            best = max(keys.score(condition.field.kind, a, b) for a in own_keys for b in other_keys)
            differs = best < condition.threshold
        else:
            common = set(own_keys) & set(other_keys)
            if condition.method == Condition.Method.EXACT:
                common = {key for key in common if own_keys[key] == other_keys[key]}
            differs = not common
        if differs:
            return Message(messages.VETO_DIFFERENT, field=condition.field.label)
    return None


def vetoed(vetoes: Iterable[CompiledRule], mine: RecordKeys, other: RecordKeys) -> str | None:
    """Return why a veto rules the pair out, or None."""
    for veto in vetoes:
        reason = veto_reason(veto, mine, other)
        if reason is not None:
            return reason
    return None


@dataclass(frozen=True)
class Decision:
    """What was decided about one pair: a duplicate or not, by which rules, with which probability."""

    duplicate: bool
    matched: tuple[RuleMatch, ...] = ()
    scored: Scored | None = None
    veto: str | None = None


def pair_decision(
    compiled: Sequence[CompiledRule],
    mine: RecordKeys,
    other: RecordKeys,
    *,
    scorer: Scorer | None = None,
    scored: Scored | None = None,
    shared: set[tuple[str, str]] = frozenset(),
    matched: Sequence[RuleMatch] | None = None,
) -> Decision:
    """Decide one pair of records (their index rows), "not a duplicate" pairs left out by the caller.

    ``compiled`` is rules.active_rules(...) (its ``vetoes`` are read); ``scored`` the pair's score when the
    caller scored it in a batch (else it is scored here when there is a scorer); ``matched`` the rules' verdict
    when the caller evaluated them already.
    """
    vetoes = getattr(compiled, "vetoes", ())
    veto = vetoed(vetoes, mine, other) if vetoes else None
    if matched is None:
        matched = [result for rule in compiled if (result := rules.evaluate(rule, mine, other, shared)) is not None]
    if scored is None and scorer is not None:
        scored = score_pairs(scorer, mine, {0: other}).get(0)
    if veto is not None:
        return Decision(False, tuple(matched), scored, veto)
    if matched:
        return Decision(True, tuple(matched), scored)
    if scorer is not None and scored is not None and scored.probability >= scorer.threshold:
        if in_frame(compiled, mine, other):
            return Decision(True, (), scored)
    return Decision(False, (), scored)
