"""Duplicate rules as the finder uses them: compiled from the admin's rows, the index kinds they need, evaluation."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup import messages, registry
from dedup.engine import keys, score_keys
from dedup.messages import Message
from django.db import connections, router

from dedup import db
from dedup.models import Condition, Rule, ScoringModel
from dedup.registry import EntitySpec, MatchField

logger = logging.getLogger(__name__)

# A phone, email or messenger key held by records of this many different people (distinct normalised names) is
# shared: an office switchboard, info@... It no longer makes records duplicates on its own (it still counts in
# a rule together with a name, a company, a tax id...).
SHARED_KEY_MIN_PEOPLE = 3
# A key held by more records than this is shared whatever the names say (no single person has 500 records), and
# the finder does not fetch its holders: it keeps every lookup bounded.
SHARED_KEY_MAX_HOLDERS = 500
# A blocking key (fuzzy conditions) held by more records than this is a common word or name, not a person: the
# finder does not look it up and the scan skips its block (comparing it would cost seconds).
MAX_FUZZY_BLOCK = 2000


@dataclass(frozen=True)
class CompiledCondition:
    """A condition ready for evaluation: the registry field, the method, and the index kinds it reads."""

    field: MatchField
    method: str
    threshold: int
    fold: bool = False

    @property
    def fuzzy(self) -> bool:
        return self.method == Condition.Method.FUZZY

    @property
    def kind(self) -> str:
        """The kind whose keys are compared (normalised, or provider-folded emails)."""
        if self.fold and self.field.kind == "email":
            return keys.fold_kind(self.field.name)
        return keys.norm_kind(self.field.name)

    @property
    def lookup_kind(self) -> str:
        """The kind whose equal keys make two records candidates: the blocking keys for a fuzzy condition."""
        return keys.block_kind(self.field.name) if self.fuzzy else self.kind

    @property
    def kinds(self) -> set[str]:
        return {self.kind, self.lookup_kind}

    @property
    def contact(self) -> bool:
        return self.field.kind in keys.CONTACT_KINDS


@dataclass(frozen=True)
class CompiledRule:
    """A rule of one entity: its conditions (AND), its stage scope and its must-be-equal field."""

    rule: Rule
    spec: EntitySpec
    conditions: tuple[CompiledCondition, ...]
    # None: every open stage (won and lost left out); otherwise exactly these stage ids. Only for staged entities.
    stage_ids: frozenset[int] | None = None
    equal_field: str | None = None
    # Entities placed in time (EntitySpec.time_field): the most seconds two records may lie apart and still be
    # duplicates (the rule's own window, else the entity's default); None: no time check.
    window: int | None = None

    @property
    def id(self) -> int:
        return self.rule.pk

    @property
    def staged(self) -> bool:
        return bool(self.spec.stage_field)

    @property
    def veto(self) -> bool:
        """A veto: never a duplicate when one of its fields differs (dedup.engine.decide)."""
        return self.rule.kind == Rule.Kind.VETO

    @property
    def contact_only(self) -> bool:
        """Made only of phone/email/messenger conditions: a shared key does not count in it."""
        return all(condition.contact for condition in self.conditions)

    @property
    def kinds(self) -> set[str]:
        """The index kinds evaluating this rule reads."""
        kinds = set().union(*(condition.kinds for condition in self.conditions))
        if self.staged:
            kinds.add(keys.STAGE_KIND)
        if self.equal_field:
            kinds.add(keys.equal_kind(self.equal_field))
        if self.window is not None:
            kinds.add(keys.TIME_KIND)
        return kinds

    def within_window(self, mine: RecordKeys, other: RecordKeys) -> bool:
        """Tell whether the two records lie within the rule's window (always, for a rule without one); a record
        with no time is never within one."""
        if self.window is None:
            return True
        return within(self.window, mine.moment, other.moment)

    def in_scope(self, record: RecordKeys) -> bool:
        if not self.staged:
            return True
        stage = record.stage
        if stage is None:
            return False
        stage_key, meaning = stage
        if self.stage_ids is None:
            return meaning == keys.STAGE_OPEN
        try:
            return int(stage_key) in self.stage_ids
        except ValueError:
            return False


@dataclass
class RecordKeys:
    """The index rows of one record (or of data not saved yet), by kind: {kind: {key: value}}."""

    by_kind: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, kind: str, key: str, value: str) -> None:
        self.by_kind.setdefault(kind, {})[key] = value

    def get(self, kind: str) -> dict[str, str]:
        return self.by_kind.get(kind, {})

    @property
    def stage(self) -> tuple[str, str] | None:
        for key, value in self.get(keys.STAGE_KIND).items():
            return key, value
        return None

    def equal(self, name: str) -> str:
        return min(self.get(keys.equal_kind(name)), default="")

    @property
    def moment(self) -> str | None:
        """The record's time key (entities placed in time), or None."""
        return min(self.get(keys.TIME_KIND), default=None)

    @classmethod
    def from_rows(cls, rows: Iterable[keys.KeyRow]) -> RecordKeys:
        record = cls()
        for row in rows:
            record.add(row.kind, row.key, row.value)
        return record


@dataclass(frozen=True)
class RuleMatch:
    """How one rule matched a pair: its score (the weakest condition's) and the reason in words."""

    rule: CompiledRule
    score: int
    reason: str


# ---------------------------------------------------------------------------------------------------------------
# Loading rules


def compile_rule(rule: Rule, conditions: Iterable[Condition], spec: EntitySpec | None = None) -> CompiledRule | None:
    """Return the rule ready for evaluation, or None when it has no usable condition (logged)."""
    spec = spec or rule.spec
    if spec is None:
        logger.warning("Rule %s is for the unregistered entity %r; skipped", rule.pk, rule.entity)
        return None
    compiled = []
    for condition in conditions:
        if not spec.has_field(condition.field):
            logger.warning("Rule %s: %r is not a field of %s; rule skipped", rule.pk, condition.field, spec.key)
            return None
        match_field = spec.field(condition.field)
        threshold = condition.threshold if condition.threshold is not None else 100
        compiled.append(CompiledCondition(match_field, condition.method, int(threshold), bool(condition.fold_email)))
    if not compiled:
        return None
    stage_ids = None
    if spec.stage_field and rule.stage_ids:
        stage_ids = frozenset(int(pk) for pk in rule.stage_ids if str(pk).isdigit())
    equal_field = rule.must_equal if rule.must_equal and rule.must_equal in spec.equal_fields else None
    return CompiledRule(
        rule, spec, tuple(compiled), stage_ids if spec.stage_field else None, equal_field, rule_window(rule, spec)
    )


def rule_window(rule: Rule, spec: EntitySpec) -> int | None:
    """Return the seconds within which the rule's records may be duplicates: its own window, else the entity's
    default; None for an entity not placed in time."""
    if not spec.time_field:
        return None
    hours = getattr(rule, "time_window_hours", None)
    if hours:
        return int(hours) * 3600
    if spec.default_window is not None:
        return int(spec.default_window.total_seconds())
    return None


def within(window: int, first: str | None, second: str | None) -> bool:
    """Tell whether two time keys lie at most `window` seconds apart (False when one is missing)."""
    if first is None or second is None:
        return False
    apart = keys.seconds_apart(first, second)
    return apart is not None and apart <= window


class RuleList(list):
    """An entity's active duplicate rules (the list) and its active vetoes (``vetoes``), read in one query.

    ``scoring_stamp`` is the stamp of the entity's learned scoring model read with them, (id, updated_at,
    threshold), or None when it has none; ``stamp_known`` is false when no rule row came back to carry it
    (dedup.engine.decide.scorer_for then asks itself).
    """

    def __init__(self, compiled: Iterable[CompiledRule] = (), vetoes: Iterable[CompiledRule] = (), *,
                 scoring_stamp: tuple | None = None, stamp_known: bool = False):
        super().__init__(compiled)
        self.vetoes: list[CompiledRule] = list(vetoes)
        self.scoring_stamp = scoring_stamp
        self.stamp_known = stamp_known


def active_rules(entity_key: str) -> RuleList:
    """Return the active duplicate rules of an entity, compiled, in their admin order, with its active vetoes
    as ``.vetoes`` and the stamp of its scoring model (one query: the stamp rides along as subqueries, so a card
    pays no query of its own for it).

    Plain SQL through dedup.db: every card, change-list page, typed warning and intake request reads the rules,
    and compiling the ORM's join with the stamp's subqueries cost twice the query's own time (bench_finder:
    26 ms against 13 ms for the join alone on a loaded 2-core machine; the plain statement under 1 ms).
    """
    spec = registry.get(entity_key)
    rows, stamp = _active_rows(entity_key)
    compiled = _compile_grouped(spec, rows)
    return RuleList(
        [rule for rule in compiled if not rule.veto],
        [rule for rule in compiled if rule.veto],
        scoring_stamp=stamp,
        stamp_known=bool(rows),
    )


def _active_rows(entity_key: str) -> tuple[list[Condition], tuple | None]:
    """Read the entity's active conditions with their rules, and its scoring model's (id, updated_at, threshold)."""
    connection = connections[router.db_for_read(Condition)]
    c_width, r_width = db.width(Condition), db.width(Rule)

    def col(model, name, alias):
        return db.column(connection, model, name, alias)

    scoring = db.table(connection, ScoringModel)
    stamp_columns = [
        f"(SELECT {col(ScoringModel, name, 's')} FROM {scoring} s WHERE {col(ScoringModel, 'entity', 's')} = %s)"
        for name in ("id", "updated_at", "threshold")
    ]
    sql = (
        f"SELECT {db.select_list(Condition, 'c')}, {db.select_list(Rule, 'r')}, {', '.join(stamp_columns)} "
        f"FROM {db.table(connection, Condition)} c JOIN {db.table(connection, Rule)} r "
        f"ON {col(Rule, 'id', 'r')} = {col(Condition, 'rule', 'c')} "
        f"WHERE {col(Rule, 'entity', 'r')} = %s AND {col(Rule, 'active', 'r')} "
        f"ORDER BY {col(Rule, 'position', 'r')}, {col(Rule, 'id', 'r')}, {col(Condition, 'position', 'c')}, "
        f"{col(Condition, 'id', 'c')}"
    )
    conditions: list[Condition] = []
    rules_by_id: dict[int, Rule] = {}
    stamp = None
    for row in db.fetch(Condition, sql, [entity_key, entity_key, entity_key, entity_key]):
        condition = db.instance(Condition, row[:c_width], "c")
        rule_row = row[c_width : c_width + r_width]
        rule = rules_by_id.get(condition.rule_id) or db.instance(Rule, rule_row, "r")
        rules_by_id[rule.pk] = rule
        condition.rule = rule
        conditions.append(condition)
        scoring_id, updated_at, threshold = row[c_width + r_width :]
        if scoring_id is not None and stamp is None:
            stamp = (scoring_id, db.converted(ScoringModel, "updated_at", updated_at), threshold)
    return conditions, stamp


def compile_rules(rules: Iterable[Rule]) -> list[CompiledRule]:
    """Compile rules given as model instances (their conditions are read, prefetched or not); a veto is
    compiled too (its ``veto`` is true): callers that find pairs leave it out."""
    compiled = []
    for rule in rules:
        item = compile_rule(rule, list(rule.conditions.all()))
        if item is not None:
            compiled.append(item)
    return compiled


def _compile_grouped(spec: EntitySpec, conditions: Iterable[Condition]) -> list[CompiledRule]:
    grouped: dict[int, tuple[Rule, list[Condition]]] = {}
    for condition in conditions:
        grouped.setdefault(condition.rule_id, (condition.rule, []))[1].append(condition)
    compiled = []
    for rule, rule_conditions in grouped.values():
        item = compile_rule(rule, rule_conditions, spec)
        if item is not None:
            compiled.append(item)
    return compiled


def plan_kinds(spec: EntitySpec) -> set[str]:
    """Return the index kinds an entity needs: those of all its rules (active or not), its identity and scope."""
    kinds: set[str] = set()
    for rule in _compile_grouped(
        spec, Condition.objects.filter(rule__entity=spec.key).select_related("rule").order_by("rule_id", "id")
    ):
        kinds |= rule.kinds
    if spec.identity_field and spec.has_field(spec.identity_field):
        kinds.add(keys.norm_kind(spec.identity_field))
    if spec.stage_field:
        kinds.add(keys.STAGE_KIND)
    if spec.time_field:
        kinds.add(keys.TIME_KIND)
    for name in spec.equal_fields:
        kinds.add(keys.equal_kind(name))
    # The scored matcher's keys and the fields it compares (dedup.engine.decide), for the entities it serves.
    kinds |= score_keys.index_kinds(spec)
    return kinds


def identity_kind(spec: EntitySpec) -> str | None:
    if spec.identity_field and spec.has_field(spec.identity_field):
        return keys.norm_kind(spec.identity_field)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Shared keys


def is_shared(*, holders: int, people: int) -> bool:
    """Tell whether a contact key is shared: used by several different people, or by too many records."""
    return people >= SHARED_KEY_MIN_PEOPLE or holders > SHARED_KEY_MAX_HOLDERS


def shared_note(match_field: MatchField, key: str, value: str, *, holders: int, people: int) -> str:
    """Return why a shared key does not count: "+7 495 123-45-67: shared office number, 14 people"."""
    shown = keys.display(match_field, key, value)
    if match_field.kind == "phone":
        what = _("shared office number")
    elif match_field.kind == "email":
        what = _("shared mailbox")
    else:
        what = _("shared %(field)s") % {"field": match_field.label}
    if people >= SHARED_KEY_MIN_PEOPLE:
        count = ngettext("%(count)d person", "%(count)d people", people) % {"count": people}
    else:
        count = ngettext("%(count)d record", "%(count)d records", holders) % {"count": holders}
    return _("%(value)s: %(what)s, %(count)s") % {"value": shown, "what": what, "count": count}


# ---------------------------------------------------------------------------------------------------------------
# Evaluation of one pair


def evaluate(
    rule: CompiledRule,
    mine: RecordKeys,
    other: RecordKeys,
    shared: set[tuple[str, str]] = frozenset(),
) -> RuleMatch | None:
    """Return how the rule matches the two records, or None; `shared` holds the (kind, key) pairs that are shared."""
    if not (rule.in_scope(mine) and rule.in_scope(other)):
        return None
    # Outside the window two records are different events (a repeat purchase), whatever else they share.
    if not rule.within_window(mine, other):
        return None
    equal_part = None
    if rule.equal_field:
        if mine.equal(rule.equal_field) != other.equal(rule.equal_field):
            return None
        value = other.get(keys.equal_kind(rule.equal_field)).get(other.equal(rule.equal_field), "")
        if value:
            label = _equal_label(rule)
            equal_part = Message(messages.SAME_VALUE, field=label, value=value)
    parts = []
    scores = []
    for condition in rule.conditions:
        result = _evaluate_condition(rule, condition, mine, other, shared)
        if result is None:
            return None
        scores.append(result[0])
        parts.append(result[1])
    if equal_part:
        parts.append(equal_part)
    if rule.window is not None:
        parts.append(Message(messages.WITHIN_HOURS, count=max(1, rule.window // 3600)))
    return RuleMatch(rule, min(scores), Message.join(parts, " + "))


def _equal_label(rule: CompiledRule) -> str:
    if rule.spec.has_field(rule.equal_field):
        return rule.spec.field(rule.equal_field).label
    return rule.spec.model._meta.get_field(rule.equal_field).verbose_name


def _evaluate_condition(
    rule: CompiledRule,
    condition: CompiledCondition,
    mine: RecordKeys,
    other: RecordKeys,
    shared: set[tuple[str, str]],
) -> tuple[int, str] | None:
    label = condition.field.label
    own_keys, other_keys = mine.get(condition.kind), other.get(condition.kind)
    if not own_keys or not other_keys:
        return None
    if condition.fuzzy:
        best, best_key = 0, ""
        for own_key in own_keys:
            for other_key in other_keys:
                value = keys.score(condition.field.kind, own_key, other_key)
                if value > best or (value == best and other_key < best_key):
                    best, best_key = value, other_key
        if best < condition.threshold:
            return None
        if best == 100:
            shown = keys.display(condition.field, best_key, other_keys[best_key])
            return 100, Message(messages.SAME_VALUE, field=label, value=shown)
        return best, Message(messages.SIMILAR, field=label, score=best)
    common = sorted(set(own_keys) & set(other_keys))
    if condition.method == Condition.Method.EXACT:
        common = [key for key in common if own_keys[key] == other_keys[key]]
    if rule.contact_only:
        common = [key for key in common if (condition.kind, key) not in shared]
    if not common:
        return None
    key = common[0]
    shown = keys.display(condition.field, key, other_keys[key])
    return 100, Message(messages.SAME_VALUE, field=label, value=shown)

