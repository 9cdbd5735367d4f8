"""Find the duplicates of one record, of a page of records, or of data not saved yet, through the match-key index.

Candidates come from the index in one query: the holders of the record's rule keys (or of its blocking keys for
fuzzy conditions) and, when the entity has a learned scoring model, of its scoring keys (dedup.engine.score_keys,
a key held by more than score_keys.MAX_BLOCK records not looked up alone). Each pair is decided in one place,
dedup.engine.decide: a hard rule, or a match probability at the entity's threshold, unless a veto holds; the
rules are evaluated and the pairs scored in Python on the index rows of both records (the scorer reads the
compared fields' values from them, never the records). `duplicates_of` takes at most four queries however large
the base: the rules (with their vetoes and the scoring model's stamp), the record's keys with how many records
hold each, the candidates' keys with the pairs marked "not a duplicate", and the matched records (two more,
once per process after the model was learned again or refined: its weights).

About 500 lines, over the usual 400 for a stated reason: the one query path for a card, a page of records and
data not saved yet (owners, holder counts, candidates, decision, ordering) reads best in one place, each part
used by the three entry points above.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.db import connection, models

from dedup import registry
from dedup.engine import decide, keys, rules, score_keys
from dedup.engine.decide import Scored, Scorer
from dedup.engine.rules import CompiledRule, RecordKeys, RuleMatch
from dedup.models import MatchKey, NotDuplicate, Rule
from dedup.registry import EntitySpec

ND_TABLE = NotDuplicate._meta.db_table
# Holders of one key counted at most (data not saved yet): past the rules' own limits (rules.MAX_FUZZY_BLOCK,
# rules.SHARED_KEY_MAX_HOLDERS) an exact count changes no decision, and counting a very common name costs time.
HOLDER_COUNT_CAP = 10_000
# Unsaved records asked about per round of duplicates_of_values_many: their keys' counts are one statement of
# about five parameters per key (SQLite takes 32,766) and their candidates one query.
VALUES_CHUNK = 250
# Keys counted per statement: one SELECT each in a UNION ALL, and SQLite takes at most 500 of them.
HOLDER_KEYS_CHUNK = 400
# Holders of a scoring key counted at most: past score_keys.MAX_BLOCK it is not looked up alone, whatever the count.
SCORE_COUNT_CAP = score_keys.MAX_BLOCK + 1


def _count_cap(kind: str) -> int:
    return SCORE_COUNT_CAP if kind == score_keys.SCORE_KIND else HOLDER_COUNT_CAP

# The kind of the rows that carry "not a duplicate" pairs in the candidates' query (no index kind starts so).
_NOT_DUPLICATE = "_not_duplicate"


@dataclass
class Match:
    """Another record that is a duplicate: the best rule it matched (None: found by its match probability alone),
    every reason in words, the score (the rule's, else the probability in percent), and when the entity has a
    learned model the match probability and its why (each field's contribution in the reader's language)."""

    record: models.Model
    rule: Rule | None
    reasons: list[str]
    score: int
    rules: list[Rule] = field(default_factory=list)
    probability: float | None = None
    why: list[str] = field(default_factory=list)
    scored: Scored | None = None

    @property
    def pk(self):
        return self.record.pk


class MatchList(list):
    """The matches of one record, best first; `notes` says which of its keys are shared and so do not count."""

    def __init__(self, matches: Iterable[Match] = (), notes: Iterable[str] = ()):
        super().__init__(matches)
        self.notes: list[str] = list(notes)


@dataclass
class _Found:
    """What decided one pair: the rules that matched and the score."""

    matched: list[RuleMatch]
    scored: Scored | None = None


@dataclass
class _Owner:
    """A record whose duplicates are looked for (a saved one, or data checked before it is saved)."""

    pk: int | None
    keys: RecordKeys
    holders: dict[tuple[str, str], int] = field(default_factory=dict)
    shared: set[tuple[str, str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    candidates: set[int] = field(default_factory=set)


def duplicates_of(record: models.Model, *, limit: int = 50) -> MatchList:
    """Return the records that are duplicates of this one by the active rules, best first, with the reasons."""
    spec = _spec_for(type(record))
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    if not compiled and scorer is None:
        return MatchList()
    if record.pk is None:
        rows = keys.record_rows(spec, record, _needed_kinds(spec, compiled, scorer))
        return _values_matches(spec, rows, limit=limit, compiled=compiled, scorer=scorer)
    owners = _load_owners(spec, compiled, [record.pk], scorer)
    owner = owners.get(record.pk)
    if owner is None:
        return MatchList()
    found = _match(spec, compiled, [owner], scorer)
    return MatchList(_as_matches(spec, found.get(record.pk, {}), limit), owner.notes)


def duplicates_of_values(
    entity_key: str,
    *,
    values: dict[str, Iterable[object]],
    stage: models.Model | None = None,
    equal: dict[str, object] | None = None,
    limit: int = 50,
) -> MatchList:
    """Return the records matching data that is not saved yet, e.g. an incoming lead's {"phone": [...], ...}.

    `values` maps registry field names to raw values; `stage` is the stage the record would be in (leads and
    deals: without one, rules scoped to stages do not apply); `equal` gives must-be-equal fields ({"service": ...}).
    """
    spec = registry.get(entity_key)
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    if not compiled and scorer is None:
        return MatchList()
    rows = keys.values_rows(spec, values, _needed_kinds(spec, compiled, scorer), stage=stage, equal=equal)
    return _values_matches(spec, rows, limit=limit, compiled=compiled, scorer=scorer)


def duplicates_of_values_many(
    entity_key: str,
    items: Sequence[tuple[dict[str, Iterable[object]], models.Model | None]],
    *,
    limit: int = 50,
) -> list[MatchList]:
    """Return `duplicates_of_values` of many unsaved records at once ((values, stage) each), in their order.

    The same rules, index and evaluation as one at a time, in a constant number of queries per
    VALUES_CHUNK records (key counts, candidates, matched records) instead of four per record: an import asks
    about thousands of rows. Each record is matched against the saved ones only, not against the others given.
    """
    spec = registry.get(entity_key)
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    results = [MatchList() for _item in items]
    if not compiled and scorer is None:
        return results
    needed, lookup_kinds = _needed_kinds(spec, compiled, scorer), _lookup_kinds(compiled, scorer)
    for start in range(0, len(items), VALUES_CHUNK):
        owners: list[_Owner] = []
        wanted: set[tuple[str, str]] = set()
        for index, (values, stage) in enumerate(items[start : start + VALUES_CHUNK], start):
            rows = keys.values_rows(spec, values, needed, stage=stage)
            if not rows:
                continue
            # A negative number stands for the unsaved record: no saved record has it.
            owner = _Owner(pk=-(index + 1), keys=RecordKeys.from_rows(rows))
            owners.append(owner)
            wanted |= {(row.kind, row.key) for row in rows if row.kind in lookup_kinds}
        if not owners:
            continue
        counts: dict[tuple[str, str], int] = {}
        wanted_keys = sorted(wanted)
        for first in range(0, len(wanted_keys), HOLDER_KEYS_CHUNK):
            counts.update(_holder_counts(spec, wanted_keys[first : first + HOLDER_KEYS_CHUNK]))
        for owner in owners:
            owner.holders = {item: counts[item] for kind in lookup_kinds for item in
                             ((kind, key) for key in owner.keys.get(kind)) if item in counts}
        found = _match(spec, compiled, owners, scorer)
        pks = {pk for pairs in found.values() for pk in pairs}
        records = spec.model._default_manager.in_bulk(list(pks)) if pks else {}
        for owner in owners:
            results[-owner.pk - 1] = MatchList(
                _as_matches(spec, found.get(owner.pk, {}), limit, records=records), owner.notes
            )
    return results


def duplicate_counts(model: type[models.Model], pks: Iterable[int]) -> dict[int, int]:
    """Return {pk: number of duplicates} for a page of records in three queries, whatever the page size."""
    spec = _spec_for(model)
    ids = [pk for pk in dict.fromkeys(pks) if pk is not None]
    counts = {pk: 0 for pk in ids}
    if not ids:
        return counts
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    if not compiled and scorer is None:
        return counts
    owners = _load_owners(spec, compiled, ids, scorer)
    for pk, pairs in _match(spec, compiled, list(owners.values()), scorer, detail=False).items():
        counts[pk] = len(pairs)
    return counts


def duplicate_partners(
    model: type[models.Model], pks: Iterable[int], *, holders: Mapping[tuple[str, str], int] | None = None
) -> dict[int, set[int]]:
    """Return {pk: the ids of its duplicates} by the active rules and the learned model, in three queries per
    call (the stored figures of dedup.engine.counts are built from it).

    ``holders``: how many records hold each shared lookup key, from `shared_key_counts` (a key missing is held by
    its record alone); given, the records' keys are read without counting their holders again, which is what a
    rebuild of every record's figures needs (one count of the whole index instead of one per key per batch)."""
    spec = _spec_for(model)
    ids = [pk for pk in dict.fromkeys(pks) if pk is not None]
    partners: dict[int, set[int]] = {pk: set() for pk in ids}
    if not ids:
        return partners
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    if not compiled and scorer is None:
        return partners
    owners = _load_owners(spec, compiled, ids, scorer, holders=holders)
    for pk, pairs in _match(spec, compiled, list(owners.values()), scorer, detail=False).items():
        if pk is not None:
            partners[pk] = set(pairs)
    return partners


# ---------------------------------------------------------------------------------------------------------------
# Internals


def _spec_for(model: type[models.Model]) -> EntitySpec:
    spec = registry.for_model(model)
    if spec is None:
        raise ValueError(f"{model.__name__} is not registered with duplicate control")
    return spec


def _needed_kinds(spec: EntitySpec, compiled: list[CompiledRule], scorer: Scorer | None = None) -> set[str]:
    every = [*compiled, *getattr(compiled, "vetoes", ())]
    kinds = set().union(*(rule.kinds for rule in every)) if every else set()
    identity = rules.identity_kind(spec)
    if identity:
        kinds.add(identity)
    if scorer is not None:
        kinds |= scorer.kinds
        if spec.stage_field:
            kinds.add(keys.STAGE_KIND)
    return kinds


def _lookup_kinds(compiled: list[CompiledRule], scorer: Scorer | None = None) -> set[str]:
    kinds = {condition.lookup_kind for rule in compiled for condition in rule.conditions}
    if scorer is not None:
        kinds.add(score_keys.SCORE_KIND)
    return kinds


def shared_key_counts(model: type[models.Model]) -> dict[tuple[str, str], int]:
    """Return {(kind, key): holders} for every lookup key of the entity that more than one record holds, capped as
    `_load_owners` caps them: one aggregate over the index (seconds at 1,000,000 records), for `duplicate_partners`
    over the whole entity."""
    spec = _spec_for(model)
    compiled = rules.active_rules(spec.key)
    scorer = decide.scorer_for(spec, compiled)
    lookup_kinds = sorted(_lookup_kinds(compiled, scorer))
    if not lookup_kinds:
        return {}
    table, entity, _record_id, kind, key, _value = _names()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {kind}, {key}, COUNT(*) FROM {table} WHERE {entity} = %s AND {kind} IN ({_marks(lookup_kinds)}) "
            f"GROUP BY {kind}, {key} HAVING COUNT(*) > 1",
            [spec.key, *lookup_kinds],
        )
        return {(row_kind, row_key): min(count, _count_cap(row_kind)) for row_kind, row_key, count in cursor.fetchall()}


def _load_owners(
    spec: EntitySpec,
    compiled: list[CompiledRule],
    pks: list[int],
    scorer: Scorer | None = None,
    *,
    holders: Mapping[tuple[str, str], int] | None = None,
) -> dict[int, _Owner]:
    """Read the keys of these records from the index with, for each lookup key, how many records hold it (counted
    here, or taken from ``holders``: see duplicate_partners).

    Plain SQL: this and the candidates' query run on every card and change-list page, and building them with the
    ORM cost more than running them.
    """
    lookup_kinds = sorted(_lookup_kinds(compiled, scorer))
    needed = sorted(_needed_kinds(spec, compiled, scorer))
    table, entity, record_id, kind, key, value = _names()
    if holders is not None:
        owners: dict[int, _Owner] = {}
        lookup = set(lookup_kinds)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT m.{record_id}, m.{kind}, m.{key}, m.{value} FROM {table} m WHERE m.{entity} = %s "
                f"AND m.{record_id} IN ({_marks(pks)}) AND m.{kind} IN ({_marks(needed)})",
                [spec.key, *pks, *needed],
            )
            for row_record, row_kind, row_key, row_value in cursor.fetchall():
                owner = owners.setdefault(row_record, _Owner(pk=row_record, keys=RecordKeys()))
                owner.keys.add(row_kind, row_key, row_value)
                if row_kind in lookup:
                    owner.holders[(row_kind, row_key)] = holders.get((row_kind, row_key), 1)
        return owners
    sql = (
        f"SELECT m.{record_id}, m.{kind}, m.{key}, m.{value}, "
        # Counted only for the kinds candidates are looked up by (a stage holds thousands of records), and at
        # most HOLDER_COUNT_CAP (past every limit: a common name's count would cost time and change nothing).
        # A scoring key only needs to be told from one held by more than score_keys.MAX_BLOCK records.
        f"CASE WHEN m.{kind} = %s THEN (SELECT COUNT(*) FROM (SELECT 1 FROM {table} h "
        f"WHERE h.{entity} = m.{entity} AND h.{kind} = m.{kind} AND h.{key} = m.{key} "
        f"LIMIT {SCORE_COUNT_CAP}) capped) "
        f"WHEN m.{kind} IN ({_marks(lookup_kinds)}) THEN (SELECT COUNT(*) FROM (SELECT 1 FROM {table} h "
        f"WHERE h.{entity} = m.{entity} AND h.{kind} = m.{kind} AND h.{key} = m.{key} "
        f"LIMIT {HOLDER_COUNT_CAP}) capped) ELSE 0 END "
        f"FROM {table} m WHERE m.{entity} = %s AND m.{record_id} IN ({_marks(pks)}) AND m.{kind} IN ({_marks(needed)})"
    )
    owners: dict[int, _Owner] = {}
    lookup = set(lookup_kinds)
    with connection.cursor() as cursor:
        cursor.execute(sql, [score_keys.SCORE_KIND, *lookup_kinds, spec.key, *pks, *needed])
        for row_record, row_kind, row_key, row_value, count in cursor.fetchall():
            owner = owners.setdefault(row_record, _Owner(pk=row_record, keys=RecordKeys()))
            owner.keys.add(row_kind, row_key, row_value)
            if row_kind in lookup:
                owner.holders[(row_kind, row_key)] = count or 0
    return owners


def _names() -> tuple[str, ...]:
    q = connection.ops.quote_name
    return (q(MatchKey._meta.db_table), *(q(name) for name in ("entity", "record_id", "kind", "key", "value")))


def _marks(values) -> str:
    return ", ".join(["%s"] * len(values))


def _values_matches(
    spec: EntitySpec, rows: list[keys.KeyRow], *, limit: int, compiled=None, scorer: Scorer | None = None
) -> MatchList:
    compiled = compiled if compiled is not None else rules.active_rules(spec.key)
    if (not compiled and scorer is None) or not rows:
        return MatchList()
    owner = _Owner(pk=None, keys=RecordKeys.from_rows(rows))
    lookup_kinds = _lookup_kinds(compiled, scorer)
    wanted = [(row.kind, row.key) for row in rows if row.kind in lookup_kinds]
    if wanted:
        owner.holders = _holder_counts(spec, wanted)
    found = _match(spec, compiled, [owner], scorer)
    return MatchList(_as_matches(spec, found.get(None, {}), limit), owner.notes)


def _holder_counts(spec: EntitySpec, wanted: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Return how many records hold each (kind, key), counting at most HOLDER_COUNT_CAP of one key.

    One statement of one capped count per key: each is an index-only range of the lookup index, where an OR of
    the keys made PostgreSQL visit every holder's row (300 ms for a common name at 1,000,000 customers). A key held
    by more records than the cap is past every limit the rules apply, so its exact count changes nothing.
    """
    table, entity, _record_id, kind, key, _value = _names()
    parts, params = [], []
    for wanted_kind, wanted_key in wanted:
        parts.append(
            f"SELECT %s, %s, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} h WHERE h.{entity} = %s "
            f"AND h.{kind} = %s AND h.{key} = %s LIMIT {_count_cap(wanted_kind)}) capped)"
        )
        params += [wanted_kind, wanted_key, spec.key, wanted_kind, wanted_key]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {(row_kind, row_key): count for row_kind, row_key, count in cursor.fetchall() if count}


def _match(
    spec: EntitySpec, compiled: list[CompiledRule], owners: list[_Owner], scorer: Scorer | None = None,
    *, detail: bool = True,
) -> dict[int | None, dict[int, _Found]]:
    """Return {owner pk: {other pk: what made it a duplicate}} with one query for all the candidates.

    ``detail``: also score the pairs a rule matched and explain the scored ones (what a list shows); counts
    need neither, only the decision."""
    lookup: dict[str, set[str]] = defaultdict(set)
    scoring_lookup: dict[int | None, set[str]] = {}
    for owner in owners:
        for rule in compiled:
            for kind, key in _rule_lookup(rule, owner):
                # A saved record's key that it alone holds brings no candidate: not asked about. (A page of
                # records, a rebuild: most phones and emails are one person's, and an IN list of hundreds of
                # keys made PostgreSQL scan the whole index instead of looking them up.)
                if not _saved(owner) or owner.holders.get((kind, key), 0) > 1:
                    lookup[kind].add(key)
        if scorer is not None:
            # A key held by too many records is not looked up alone (a common name, a big company).
            own = {
                key for key in owner.keys.get(score_keys.SCORE_KIND)
                if 0 < owner.holders.get((score_keys.SCORE_KIND, key), 0) <= score_keys.block_limit(key)
            }
            scoring_lookup[owner.pk] = own
            lookup[score_keys.SCORE_KIND].update(own)
    results: dict[int | None, dict[int, _Found]] = {owner.pk: {} for owner in owners}
    lookup = {kind: kind_keys for kind, kind_keys in lookup.items() if kind_keys}
    if not lookup:
        return results
    # The holders of the lookup keys (the candidates), and all the keys of theirs the rules read, in one query.
    table, entity, record_id, kind, key, value = _names()
    wanted, params = [], []
    for lookup_kind, kind_keys in sorted(lookup.items()):
        wanted.append(f"(c.{kind} = %s AND c.{key} IN ({_marks(kind_keys)}))")
        params += [lookup_kind, *sorted(kind_keys)]
    needed = sorted(_needed_kinds(spec, compiled, scorer))
    sql = (
        f"SELECT m.{record_id}, m.{kind}, m.{key}, m.{value} FROM {table} m "
        f"WHERE m.{entity} = %s AND m.{kind} IN ({_marks(needed)}) AND m.{record_id} IN "
        f"(SELECT c.{record_id} FROM {table} c WHERE c.{entity} = %s AND ({' OR '.join(wanted)}))"
    )
    params = [spec.key, *needed, spec.key, *params]
    saved = [owner.pk for owner in owners if _saved(owner)]
    if saved:
        # The pairs marked "not a duplicate" ride along in the same query, as rows of their own kind.
        nd_table, low, high = (connection.ops.quote_name(name) for name in (ND_TABLE, "low_id", "high_id"))
        sql += (
            f" UNION ALL SELECT n.{low}, %s, CAST(n.{high} AS VARCHAR(20)), '' FROM {nd_table} n "
            f"WHERE n.{entity} = %s AND (n.{low} IN ({_marks(saved)}) OR n.{high} IN ({_marks(saved)}))"
        )
        params += [_NOT_DUPLICATE, spec.key, *saved, *saved]
    others: dict[int, RecordKeys] = defaultdict(RecordKeys)
    holders_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    not_duplicates: dict[int, set[int]] = defaultdict(set)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row_record, row_kind, row_key, row_value in cursor.fetchall():
            if row_kind == _NOT_DUPLICATE:
                not_duplicates[row_record].add(int(row_key))
                not_duplicates[int(row_key)].add(row_record)
                continue
            others[row_record].add(row_kind, row_key, row_value)
            if row_key in lookup.get(row_kind, ()):
                holders_of[(row_kind, row_key)].add(row_record)

    identity = rules.identity_kind(spec)
    vetoes = getattr(compiled, "vetoes", ())
    matched_of: dict[int | None, dict[int, list[RuleMatch]]] = {}
    to_score: list[tuple[object, object]] = []
    for owner in owners:
        _find_shared(compiled, owner, holders_of, others, identity)
        for kind, key in owner.holders:
            if kind != score_keys.SCORE_KIND:
                owner.candidates |= holders_of.get((kind, key), set())
        # The rules can only match the holders of a rule key; the score is asked about the holders of a
        # scoring key (and, for a list, about the rules' matches too).
        rule_candidates = set(owner.candidates)
        scored_candidates = _closest_scored(
            owner, [holders_of.get((score_keys.SCORE_KIND, key), set()) for key in scoring_lookup.get(owner.pk, ())],
            not_duplicates.get(owner.pk, set()),
        )
        owner.candidates |= scored_candidates
        owner.candidates.discard(owner.pk)
        owner.candidates -= not_duplicates.get(owner.pk, set())
        matched = matched_of.setdefault(owner.pk, {})
        for other_pk in owner.candidates:
            other = others[other_pk]
            if vetoes and decide.vetoed(vetoes, owner.keys, other) is not None:
                continue
            if other_pk in rule_candidates:
                for rule in compiled:
                    result = rules.evaluate(rule, owner.keys, other, owner.shared)
                    if result is not None:
                        matched.setdefault(other_pk, []).append(result)
            if scorer is not None and ((detail and other_pk in matched) or
                                       (other_pk in scored_candidates and other_pk not in matched)):
                to_score.append((("owner", owner.pk), other_pk))
    scores = {}
    if scorer is not None and to_score:
        records: dict[object, RecordKeys] = {("owner", owner.pk): owner.keys for owner in owners}
        records.update({pk: others[pk] for _owner, pk in to_score})
        scores = decide.score_batch(scorer, records, to_score, explain_at=None if detail else 2.0)
    for owner in owners:
        found = results[owner.pk]
        for other_pk, matched in matched_of[owner.pk].items():
            found[other_pk] = _Found(matched, scores.get((("owner", owner.pk), other_pk)))
        if scorer is None:
            continue
        for (owner_id, other_pk), scored in scores.items():
            if owner_id != ("owner", owner.pk) or other_pk in found:
                continue
            decision = decide.pair_decision(compiled, owner.keys, others[other_pk], scorer=scorer, scored=scored,
                                            matched=())
            if decision.duplicate:
                found[other_pk] = _Found([], scored)
    return results


def _closest_scored(owner: _Owner, blocks: list[set[int]], excluded: set[int]) -> set[int]:
    """Return the holders of the owner's scoring keys the score is asked about: at most
    score_keys.MAX_CANDIDATES of them, those sharing the most keys with the owner first (then the oldest).

    Each key's block is bounded already (score_keys.block_limit), but a record has up to nine keys: the bound
    keeps a card and each record of a change-list page at a fixed number of scored pairs however crowded its
    name and company are. A duplicate shares several keys (its name's sounds and a word of it at its company), so
    it is among the first."""
    shared: dict[int, int] = defaultdict(int)
    for block in blocks:
        for pk in block:
            shared[pk] += 1
    shared.pop(owner.pk, None)
    for pk in excluded:
        shared.pop(pk, None)
    if len(shared) <= score_keys.MAX_CANDIDATES:
        return set(shared)
    return set(sorted(shared, key=lambda pk: (-shared[pk], pk))[: score_keys.MAX_CANDIDATES])


def _rule_lookup(rule: CompiledRule, owner: _Owner) -> list[tuple[str, str]]:
    """Return the (kind, key) pairs whose holders are this rule's candidates for the owner.

    One condition drives the lookup: the one whose keys the fewest records hold. A contact-only rule looks up
    all its keys, so that whether a key is shared can be told from its holders' names. Never looked up, as in
    the scan: contact keys held by more than SHARED_KEY_MAX_HOLDERS records (shared by volume) and blocking keys
    held by more than rules.MAX_FUZZY_BLOCK (a common word, not a person).
    """
    if not rule.in_scope(owner.keys):
        return []
    best: tuple[int, list[tuple[str, str]]] | None = None
    every: list[tuple[str, str]] = []
    for condition in rule.conditions:
        kind = condition.lookup_kind
        owned = owner.keys.get(kind)
        if not owned:
            return []  # the record lacks a field the rule needs
        if condition.fuzzy:
            limit = rules.MAX_FUZZY_BLOCK
        elif condition.contact:
            limit = rules.SHARED_KEY_MAX_HOLDERS
        else:
            limit = None
        usable = [(kind, key) for key in owned if limit is None or owner.holders.get((kind, key), 0) <= limit]
        every.extend(usable)
        cost = sum(owner.holders.get(item, 0) for item in usable)
        if usable and (best is None or cost < best[0]):
            best = (cost, usable)
    if rule.contact_only:
        return every
    return best[1] if best else []


def _find_shared(
    compiled: list[CompiledRule],
    owner: _Owner,
    holders_of: dict[tuple[str, str], set[int]],
    others: dict[int, RecordKeys],
    identity: str | None,
) -> None:
    """Mark the owner's contact keys that several different people use (rules.is_shared) and say why."""
    seen: set[tuple[str, str]] = set()
    for rule in compiled:
        if not rule.contact_only:
            continue
        for condition in rule.conditions:
            for key, value in owner.keys.get(condition.kind).items():
                item = (condition.kind, key)
                if item in seen:
                    continue
                seen.add(item)
                count = owner.holders.get(item, 0)
                holder_ids = holders_of.get(item, set()) - {owner.pk}
                if count <= 1 and not holder_ids:
                    continue
                people = set()
                if identity:
                    people |= set(owner.keys.get(identity))
                    for holder in holder_ids:
                        people |= set(others[holder].get(identity))
                # The index count includes a saved owner itself; data not saved yet is one more holder.
                total = max(count + (0 if _saved(owner) else 1), len(holder_ids) + 1)
                if rules.is_shared(holders=total, people=len(people)):
                    owner.shared.add(item)
                    owner.notes.append(
                        rules.shared_note(condition.field, key, value, holders=total, people=len(people))
                    )


def _saved(owner: _Owner) -> bool:
    """Whether the owner is a saved record (data not saved yet has no pk, or a negative stand-in)."""
    return owner.pk is not None and owner.pk > 0


def _as_matches(
    spec: EntitySpec, pairs: dict[int, _Found], limit: int, *, records: dict | None = None
) -> list[Match]:
    """Order the matched records best first (a hard rule's score, then the probability), keep `limit` of them and
    load them (one query, unless given)."""
    ranked = []
    for pk, found in pairs.items():
        matched = sorted(found.matched, key=lambda item: (-item.score, item.rule.rule.position, item.rule.id))
        probability = found.scored.probability if found.scored is not None else 0.0
        best = matched[0].score if matched else 0
        ranked.append((-best, -probability, -len(matched), pk, matched, found.scored))
    ranked.sort(key=lambda item: item[:4])
    ranked = ranked[: max(0, limit)]
    if not ranked:
        return []
    if records is None:
        records = spec.model._default_manager.in_bulk([item[3] for item in ranked])
    matches = []
    for _score, _probability, _count, pk, matched, scored in ranked:
        record = records.get(pk)
        if record is None:
            continue  # deleted since the index was read
        reasons = list(dict.fromkeys(item.reason for item in matched))
        if not matched and scored is not None:
            reasons.append(scored.message())
        matches.append(
            Match(
                record=record,
                rule=matched[0].rule.rule if matched else None,
                reasons=reasons,
                score=matched[0].score if matched else (scored.percent if scored else 0),
                rules=[item.rule.rule for item in matched],
                probability=scored.probability if scored is not None else None,
                why=scored.why() if scored is not None else [],
                scored=scored,
            )
        )
    return matches
