"""The scan's scored pass, and the vetoes and scopes every scan group obeys (dedup.engine.decide's rules).

The rule scan (dedup/engine/scan.py) streams blocks of the match-key index in key ranges, so it splits into
chunks. Scored matching is not split that way: it reads the entity's records once, blocks them by several keys
at once and groups the likely matches by average linkage (scoring/clustering.py: a member joins a group only
when it is, on average, a likely match of the whole group, so one weak link never chains two strangers'
clusters). So the scored pass is ONE EXTRA CHUNK of a scan run per scored entity (key range {"scored": true}),
run by a worker like the others; the run's join unites its groups with the rule groups (a record in both joins
them: a hard rule's pair is a duplicate whatever the score).

The model is learned again when there is none, when it is older than DEDUP_SCORING_RELEARN_AFTER (7 days), or
when the base grew or shrank by more than a fifth since; otherwise the stored model scores the pairs.

Every group then obeys what the finder obeys for a pair: no two members marked "not a duplicate", no two
members a veto rules out, every member in the stages the entity's rules cover (the scored pass's groups) —
a group breaking one is split (`groups_obeying`).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dedup import registry
from dedup.engine import decide, keys, rules, score_keys
from dedup.engine.rules import RecordKeys
from dedup.engine.scan import Group, _load_keys, records_count
from dedup.engine.scoring import matcher
from dedup.engine.scoring.entity import entity_schema, read_entity, scoring_learn
from dedup.engine.scoring.store import scoring_model_load
from dedup.messages import Message
from dedup.models import NotDuplicate, ScoringModel
from dedup.registry import EntitySpec

logger = logging.getLogger(__name__)

# The key range of the scored pass's chunk (ScanChunk.key_range).
SCORED_RANGE = {"scored": True}
RELEARN_AFTER = timedelta(days=7)
# The base changed by more than this share since the model was learned: learn again.
RELEARN_GROWTH = 0.2


def is_scored_range(key_range) -> bool:
    return isinstance(key_range, dict) and bool(key_range.get("scored"))


# Records below which a model is not learned from the base alone (EM needs pairs to learn from); an entity
# with a stored model is scored whatever its size.
MIN_RECORDS_TO_LEARN = 30


def scored_entity(entity: str, records: int | None = None) -> bool:
    """Tell whether a scan of the entity runs the scored pass: a scored entity with a model, or enough records
    to learn one."""
    spec = registry.get(entity)
    if not score_keys.scorable(spec):
        return False
    if ScoringModel.objects.filter(entity=entity).exists():
        return True
    return (records if records is not None else records_count(spec)) >= MIN_RECORDS_TO_LEARN


def _relearn_after() -> timedelta:
    value = getattr(settings, "DEDUP_SCORING_RELEARN_AFTER", None)
    return timedelta(seconds=value) if isinstance(value, (int, float)) else RELEARN_AFTER


def needs_learning(spec: EntitySpec, records: int) -> bool:
    """Tell whether the entity's model is missing, old, or learned on a base of another size."""
    stored = ScoringModel.objects.filter(entity=spec.key).values_list("learned_at", "records").first()
    if stored is None or stored[0] is None:
        return True
    learned_at, learned_records = stored
    if timezone.now() - learned_at > _relearn_after():
        return True
    return abs(records - (learned_records or 0)) > RELEARN_GROWTH * max(learned_records or 0, 1)


def scored_groups(entity: str, *, progress: Callable[[int], None] | None = None) -> list[Group]:
    """Return the groups the learned model finds among the entity's records (learning it first when due),
    each with its probability in words, obeying "not a duplicate", vetoes and the rules' stage scopes."""
    spec = registry.get(entity)
    if not score_keys.scorable(spec):
        return []
    _ensure_index_kinds(spec)
    stored = ScoringModel.objects.filter(entity=entity).first()
    schema = entity_schema(spec)
    learned = None
    if stored is None or needs_learning(spec, records_count(spec)):
        learned = scoring_learn(entity=entity)
        read, model, found, pks = learned.records, learned.result.model, learned.result.groups, learned.pks
    else:
        model = scoring_model_load(entity=entity, labels={field.name: field.label for field in schema})
        by_name = {weights.name: weights for weights in model.fields}
        if any(field.name not in by_name for field in schema):  # a field registered since: learn it
            learned = scoring_learn(entity=entity)
            read, model, found, pks = learned.records, learned.result.model, learned.result.groups, learned.pks
        else:
            model.fields = [by_name[field.name] for field in schema]
            pks, read = read_entity(spec, schema)
            found = matcher.find_groups(read, model=model, threshold=stored.threshold).groups
    if progress:
        progress(len(pks))
    # the members' rows in the order of their primary keys (no map of every pk to its row: 100 MB at 1M)
    ordered = [sorted(members, key=pks.__getitem__) for members in found]
    del found
    groups = [Group([pks[row] for row in rows], [reason], [])
              for rows, reason in zip(ordered, _group_reasons(model, read, ordered))]
    del ordered, read, pks, learned  # the records are not read again: groups_obeying reads the keys from the index
    return groups_obeying(entity, groups, scored=True)


# Pairs explained at a time (matcher.explain_pairs), then kept as their groups' messages only.
REASON_BATCH_PAIRS = 4096


def _group_reasons(model, read, groups: Sequence[Sequence[int]]):
    """Yield each group's match in words: its weakest link to the first member, so the figure never flatters it.
    The links of many groups are explained at a time (matcher.explain_pairs), each as ``matcher.explain`` would."""
    batch: list[Sequence[int]] = []
    links = 0
    # Groups whose messages are equal share one (most say "9x% match: phone: the same, full name: the same"): at
    # 1,000,000 CRM records 75,757 messages of their own held about 150 MB until the scan wrote them.
    seen: dict[tuple[str, str], Message] = {}
    for rows in groups:
        batch.append(rows)
        links += len(rows) - 1
        if links >= REASON_BATCH_PAIRS:
            yield from _weakest_links(model, read, batch, seen)
            batch, links = [], 0
    if batch:
        yield from _weakest_links(model, read, batch, seen)


def _weakest_links(model, read, groups: Sequence[Sequence[int]], seen: dict[tuple[str, str], Message]):
    explained = iter(matcher.explain_pairs(model, read, [(rows[0], other) for rows in groups for other in rows[1:]]))
    for rows in groups:
        weakest = None
        for _other in rows[1:]:
            probability, reasons = next(explained)
            if weakest is None or probability < weakest.probability:
                weakest = decide.Scored(probability, tuple(reasons))
        message = weakest.message()
        yield seen.setdefault((str(message), repr(message.data)), message)


def _ensure_index_kinds(spec: EntitySpec) -> None:
    """Make the index hold the scoring keys the finder needs (a base indexed before scoring existed)."""
    from dedup.engine.index import indexed_kinds, sync_plan

    if score_keys.index_kinds(spec) - indexed_kinds(spec):
        sync_plan(spec)


# ---------------------------------------------------------------------------------------------------------------
# What every group obeys


def groups_obeying(entity: str, groups: Iterable[Group], *, scored: bool = False) -> list[Group]:
    """Split the groups so that no two members are marked "not a duplicate" or ruled out by a veto, and (for
    scored groups) every pair is in the scope of one of the entity's rules. A split keeps members in id order,
    each joining the first part it conflicts with nobody in; parts of one record are dropped."""
    groups = list(groups)
    if not groups:
        return groups
    spec = registry.get(entity)
    compiled = rules.active_rules(entity)
    vetoes = compiled.vetoes
    ids = {pk for group in groups for pk in group.ids}
    kinds: set[str] = set()
    for veto in vetoes:
        kinds |= veto.kinds
    if scored:
        if spec.stage_field:
            kinds.add(keys.STAGE_KIND)
        for rule in compiled:
            if rule.equal_field:
                kinds.add(keys.equal_kind(rule.equal_field))
    record_keys = _load_keys(spec, ids, kinds) if kinds else {}
    forbidden = _not_duplicates(entity, ids)
    empty = RecordKeys()

    def conflict(a: int, b: int) -> bool:
        if b in forbidden.get(a, ()):
            return True
        mine, other = record_keys.get(a, empty), record_keys.get(b, empty)
        if vetoes and decide.vetoed(vetoes, mine, other) is not None:
            return True
        return scored and not decide.in_frame(compiled, mine, other)

    result = []
    for group in groups:
        parts: list[list[int]] = []
        for member in group.ids:
            for part in parts:
                if not any(conflict(member, other) for other in part):
                    part.append(member)
                    break
            else:
                parts.append([member])
        for part in parts:
            if len(part) > 1:
                result.append(Group(part, list(group.reasons), list(group.rule_ids)))
    return result


def _not_duplicates(entity: str, ids: set[int]) -> dict[int, set[int]]:
    forbidden: dict[int, set[int]] = defaultdict(set)
    if not ids:
        return forbidden
    pairs = NotDuplicate.objects.filter(entity=entity).values_list("low_id", "high_id")
    if len(ids) <= 500:
        pairs = pairs.filter(low_id__in=ids)
    for low, high in pairs.iterator():
        if low in ids and high in ids:
            forbidden[low].add(high)
            forbidden[high].add(low)
    return forbidden
