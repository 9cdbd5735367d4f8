"""Find every group of duplicates of an entity: blocks streamed from the match-key index, rules evaluated inside
each block, groups by union-find. Memory grows with the number of duplicated records, not with the base.

For each rule one condition drives: its index rows are streamed in key order (the index's own order), joined in
SQL with the rows of the rule's other equality conditions, so records with the same keys arrive together as one
block. Inside a block the stage scope, the must-be-equal field, exact values, shared keys and fuzzy
conditions are checked; only what a block needs is read besides the stream, a buffer of blocks at a time.

A scan can be split into chunks by key range (`plan_chunks`); every block lies within one chunk, so the groups
of all chunks, joined by `merge_groups`, are the groups of the whole scan.
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from django.db import connection, transaction

from dedup import db, registry
from dedup.engine import keys, rules
from dedup.engine.rules import CompiledCondition, CompiledRule, RecordKeys
from dedup.models import Condition, MatchKey, NotDuplicate
from dedup.registry import EntitySpec

# Rows fetched from the database cursor at a time.
FETCH_SIZE = 10000
# Records of buffered blocks after which what the blocks need besides the stream is read in one go.
BUFFER_RECORDS = 20000
# A fuzzy block larger than this is skipped (counted in ScanStats), as the finder skips its key.
MAX_FUZZY_BLOCK = rules.MAX_FUZZY_BLOCK
# Records whose keys are read per query when a buffer of blocks needs more than the stream carries.
LOAD_BATCH = 20000
# PostgreSQL memory for the sort of a two-condition rule's join (a million rows fit).
POSTGRES_WORK_MEM = "256MB"
# Distinct reasons kept per group: enough to explain it, bounded for groups of thousands.
MAX_GROUP_REASONS = 5

# Which condition drives a rule's stream: the most selective kinds first.
_DRIVER_PREFERENCE = {"phone": 0, "email": 0, "handle": 0, "text": 1, "website": 1, "person_name": 2, "company_name": 3}


@dataclass
class Group:
    """Records found to be one: their ids (ascending), the reasons in words, and the ids of the rules that matched."""

    ids: list[int]
    reasons: list[str] = field(default_factory=list)
    rule_ids: list[int] = field(default_factory=list)

    @cached_property
    def signature(self) -> str:
        """The review queue recognises a group it already holds by this."""
        return group_signature(self.ids)


def group_signature(ids: Iterable[int]) -> str:
    """Return the stable signature of a set of records: the same records always give the same signature."""
    return hashlib.sha1(",".join(str(pk) for pk in sorted(set(ids))).encode()).hexdigest()


@dataclass
class ScanStats:
    records: int = 0
    groups: int = 0
    seconds: float = 0.0
    rows_read: int = 0
    blocks: int = 0
    shared_keys: int = 0
    skipped_blocks: int = 0


def find_groups(
    entity_key: str,
    *,
    chunk: dict | None = None,
    rules_to_use: Iterable[CompiledRule] | None = None,
    progress: Callable[[int], None] | None = None,
    stats: ScanStats | None = None,
) -> Iterator[Group]:
    """Yield the duplicate groups of an entity by its active rules (or the given compiled rules).

    `chunk` limits the scan to the blocks whose driving key lies in {"from": key or None, "to": key or None}
    (from inclusive, to exclusive); `progress` is called with the number of index rows read as they are read.
    """
    spec = registry.get(entity_key)
    compiled = list(rules_to_use) if rules_to_use is not None else rules.active_rules(entity_key)
    stats = stats if stats is not None else ScanStats()
    started = time.monotonic()
    forest = _Forest(_not_duplicates(spec))
    shared_cache: dict[str, set[str]] = {}
    for rule in compiled:
        _RuleScan(spec, rule, forest, chunk or {}, stats, progress, shared_cache).run()
    groups = forest.groups()
    stats.groups = len(groups)
    stats.seconds = round(time.monotonic() - started, 3)
    yield from groups


def merge_groups(groups: Iterable[Group]) -> list[Group]:
    """Join groups that share a record (the groups of several chunks of one scan) into the scan's groups."""
    forest = _Forest({})
    for group in groups:
        first = group.ids[0]
        forest.add(first)
        for other in group.ids[1:]:
            forest.union(first, other, None, None)
        for reason in group.reasons:
            forest.note(first, reason, None)
        for rule_id in group.rule_ids:
            forest.note(first, None, rule_id)
    return forest.groups()


# Keys sampled to find the chunk boundaries on PostgreSQL: boundaries within a fraction of a percent of exact.
QUANTILE_SAMPLE = 200_000


def plan_chunks(entity_key: str, count: int) -> list[dict]:
    """Split an entity's scan into about `count` chunks of similar size, by key ranges of its driving kinds."""
    count = max(1, int(count))
    if count == 1:
        return [{"from": None, "to": None}]
    compiled = rules.active_rules(entity_key)
    kinds = sorted({_driver(rule).lookup_kind for rule in compiled})
    queryset = MatchKey.objects.filter(entity=entity_key, kind__in=kinds)
    total = queryset.count()
    if total < count * 10:
        return [{"from": None, "to": None}]
    bounds = []
    for key in _quantile_keys(queryset, total, count, entity=entity_key, kinds=kinds):
        if key is not None and (not bounds or key > bounds[-1]):
            bounds.append(key)
    edges = [None, *bounds, None]
    return [{"from": edges[i], "to": edges[i + 1]} for i in range(len(edges) - 1)]


def _quantile_keys(queryset, total: int, count: int, *, entity: str, kinds: list[str]) -> list[str]:
    """Return the keys at about 1/count, 2/count, ... of the queryset's keys in order, in one pass.

    Chunks need similar sizes, not exact ones: PostgreSQL takes the quantiles of a random sample of about
    QUANTILE_SAMPLE keys (TABLESAMPLE BERNOULLI, no sort of the whole index); elsewhere the keys are streamed in
    index order. Not one OFFSET query per boundary: each of those walked the index from the start, 24 s for ten
    chunks of a million customers.
    """
    fractions = [index / count for index in range(1, count)]
    if db.samples_tables(connection):
        quote = connection.ops.quote_name
        opts = MatchKey._meta
        key, entity_column, kind = (quote(opts.get_field(name).column) for name in ("key", "entity", "kind"))
        percent = min(100.0, 100.0 * QUANTILE_SAMPLE / total)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {key}) "
                f"FROM {quote(opts.db_table)} TABLESAMPLE BERNOULLI (%s) "
                f"WHERE {entity_column} = %s AND {kind} = ANY(%s)",
                [fractions, percent, entity, list(kinds)],
            )
            return list(cursor.fetchone()[0] or [])
    positions = {index * total // count for index in range(1, count)}
    found = []
    for position, value in enumerate(queryset.order_by("key").values_list("key", flat=True).iterator(chunk_size=10000)):
        if position in positions:
            found.append(value)
            if len(found) == len(positions):
                break
    return found


# ---------------------------------------------------------------------------------------------------------------
# Union-find that respects "not a duplicate"


class _Forest:
    """Union-find over record ids that never joins two records marked "not a duplicate" into one group."""

    def __init__(self, forbidden: dict[int, set[int]]):
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.reasons: dict[int, list[str]] = {}
        self.rule_ids: dict[int, set[int]] = {}
        self.forbidden = forbidden
        # root -> the records some member of the group must never be grouped with
        self.banned: dict[int, set[int]] = {}

    def add(self, record: int) -> None:
        if record not in self.parent:
            self.parent[record] = record
            self.size[record] = 1
            if record in self.forbidden:
                self.banned[record] = set(self.forbidden[record])

    def find(self, record: int) -> int:
        parent = self.parent
        root = record
        while parent[root] != root:
            root = parent[root]
        while parent[record] != root:
            parent[record], record = root, parent[record]
        return root

    def union(self, a: int, b: int, reason: str | None, rule_id: int | None) -> bool:
        self.add(a)
        self.add(b)
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            banned_a, banned_b = self.banned.get(root_a), self.banned.get(root_b)
            if banned_a and any(self.find(other) == root_b for other in banned_a if other in self.parent):
                return False
            if banned_b and any(self.find(other) == root_a for other in banned_b if other in self.parent):
                return False
            if self.size[root_a] < self.size[root_b]:
                root_a, root_b = root_b, root_a
            self.parent[root_b] = root_a
            self.size[root_a] += self.size.pop(root_b)
            if banned_b:
                self.banned.setdefault(root_a, set()).update(self.banned.pop(root_b))
            for reason_b in self.reasons.pop(root_b, []):
                self._add_reason(root_a, reason_b)
            self.rule_ids.setdefault(root_a, set()).update(self.rule_ids.pop(root_b, set()))
        self.note(root_a, reason, rule_id)
        return True

    def note(self, record: int, reason: str | None, rule_id: int | None) -> None:
        root = self.find(record)
        if reason:
            self._add_reason(root, reason)
        if rule_id is not None:
            self.rule_ids.setdefault(root, set()).add(rule_id)

    def _add_reason(self, root: int, reason: str) -> None:
        kept = self.reasons.setdefault(root, [])
        if len(kept) < MAX_GROUP_REASONS and reason not in kept:
            kept.append(reason)

    def touches_forbidden(self, records: Iterable[int]) -> bool:
        return bool(self.forbidden) and any(record in self.forbidden for record in records)

    def groups(self) -> list[Group]:
        members: dict[int, list[int]] = defaultdict(list)
        for record in self.parent:
            members[self.find(record)].append(record)
        groups = [
            Group(sorted(ids), list(self.reasons.get(root, [])), sorted(self.rule_ids.get(root, set())))
            for root, ids in members.items()
            if len(ids) > 1
        ]
        groups.sort(key=lambda group: group.ids[0])
        return groups


def _not_duplicates(spec: EntitySpec) -> dict[int, set[int]]:
    forbidden: dict[int, set[int]] = defaultdict(set)
    for low, high in NotDuplicate.objects.filter(entity=spec.key).values_list("low_id", "high_id").iterator():
        forbidden[low].add(high)
        forbidden[high].add(low)
    return dict(forbidden)


# ---------------------------------------------------------------------------------------------------------------
# One rule


def _driver(rule: CompiledRule) -> CompiledCondition:
    exact = [condition for condition in rule.conditions if not condition.fuzzy]
    if exact:
        return min(exact, key=lambda condition: _DRIVER_PREFERENCE.get(condition.field.kind, 1))
    return rule.conditions[0]


class _Member:
    """A record of a block: its id and the values of the driver row, then of each joined row."""

    __slots__ = ("record_id", "values")

    def __init__(self, record_id: int, values: tuple[str, ...]):
        self.record_id = record_id
        self.values = values


class _RuleScan:
    """Stream one rule's blocks and union the records each block shows to be duplicates."""

    def __init__(self, spec, rule, forest, chunk, stats, progress, shared_cache):
        self.spec: EntitySpec = spec
        self.rule: CompiledRule = rule
        self.forest: _Forest = forest
        self.chunk: dict = chunk
        self.stats: ScanStats = stats
        self.progress = progress
        self.shared_cache: dict[str, set[str]] = shared_cache
        self.driver = _driver(rule)
        self.joined = [c for c in rule.conditions if c is not self.driver and not c.fuzzy]
        self.fuzzy_others = [c for c in rule.conditions if c is not self.driver and c.fuzzy]
        self.identity = rules.identity_kind(spec)
        # A shared key of a single-condition contact rule is told by its own block; a contact-only rule of
        # several conditions needs the shared keys of each of its kinds, found by a pass of their own.
        self.single_contact = rule.contact_only and len(rule.conditions) == 1
        self.payload_kinds = set()
        if rule.staged:
            self.payload_kinds.add(keys.STAGE_KIND)
        if rule.equal_field:
            self.payload_kinds.add(keys.equal_kind(rule.equal_field))
        if rule.window is not None:
            self.payload_kinds.add(keys.TIME_KIND)
        for condition in self.fuzzy_others:
            self.payload_kinds.add(condition.kind)
        if self.driver.fuzzy:
            self.payload_kinds.add(self.driver.kind)
        self.buffer: list[tuple[tuple[str, ...], list[_Member]]] = []
        self.buffered = 0

    # --- streaming ---

    def run(self) -> None:
        shared_sets = {}
        if self.rule.contact_only and not self.single_contact:
            for condition in self.rule.conditions:
                shared_sets[condition.kind] = self._shared_keys(condition.kind)
        self.shared_sets = shared_sets
        # Rows are (driver key, record id, driver value, joined key, joined value, ...). Most blocks have one
        # record, so rows stay plain tuples until a block of two or more is complete.
        width = len(self.joined)
        current = None
        rows_of_block: list[tuple] = []
        for rows in self._stream():
            for row in rows:
                composite = row[0] if width == 0 else (row[0], *row[3::2])
                if composite != current:
                    if len(rows_of_block) > 1:
                        self._push(current, rows_of_block)
                    current, rows_of_block = composite, []
                rows_of_block.append(row)
        if len(rows_of_block) > 1:
            self._push(current, rows_of_block)
        self._flush()

    def _stream(self) -> Iterator[list[tuple]]:
        q = connection.ops.quote_name
        table = q(MatchKey._meta.db_table)
        entity, record_id, kind, key, value = (q(name) for name in ("entity", "record_id", "kind", "key", "value"))
        columns = [f"d.{key}", f"d.{record_id}", f"d.{value}"]
        joins = []
        params: list = []
        for index, condition in enumerate(self.joined):
            alias = f"j{index}"
            joins.append(
                f"JOIN {table} {alias} ON {alias}.{entity} = d.{entity} "
                f"AND {alias}.{record_id} = d.{record_id} AND {alias}.{kind} = %s"
            )
            params.append(condition.kind)
            columns += [f"{alias}.{key}", f"{alias}.{value}"]
        where = [f"d.{entity} = %s", f"d.{kind} = %s"]
        params += [self.spec.key, self.driver.lookup_kind]
        if self.chunk.get("from") is not None:
            where.append(f"d.{key} >= %s")
            params.append(self.chunk["from"])
        if self.chunk.get("to") is not None:
            where.append(f"d.{key} < %s")
            params.append(self.chunk["to"])
        # The index (entity, kind, key, record_id) gives this order without a sort for a single condition.
        order = [f"d.{key}"] + [f"j{index}.{key}" for index in range(len(self.joined))] + [f"d.{record_id}"]
        sql = (
            f"SELECT {', '.join(columns)} FROM {table} d {' '.join(joins)} "
            f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)}"
        )
        # One read-only transaction per stream: PostgreSQL's server-side cursor lives in it, and the settings
        # below apply to it alone.
        with transaction.atomic():
            # The join of a two-condition rule is sorted in memory rather than in temporary files, and the
            # planner is told every row will be read (a cursor is planned for the first rows).
            db.set_local(connection, work_mem=POSTGRES_WORK_MEM, cursor_tuple_fraction="1.0")
            cursor = connection.chunked_cursor()
            try:
                cursor.execute(sql, params)
                while True:
                    rows = cursor.fetchmany(FETCH_SIZE)
                    if not rows:
                        break
                    self.stats.rows_read += len(rows)
                    if self.progress:
                        self.progress(len(rows))
                    yield rows
            finally:
                cursor.close()

    def _push(self, composite, rows: list[tuple]) -> None:
        if not isinstance(composite, tuple):
            composite = (composite,)
        members = [_Member(row[1], row[2::2]) for row in rows]
        self.stats.blocks += 1
        self.buffer.append((composite, members))
        self.buffered += len(members)
        if self.buffered >= BUFFER_RECORDS:
            self._flush()

    # --- evaluating the buffered blocks ---

    def _flush(self) -> None:
        if not self.buffer:
            return
        wanted_kinds = set(self.payload_kinds)
        needs_identity = self.single_contact and self.identity
        ids: set[int] = set()
        for _composite, members in self.buffer:
            if wanted_kinds or (
                needs_identity and rules.SHARED_KEY_MIN_PEOPLE <= len(members) <= rules.SHARED_KEY_MAX_HOLDERS
            ):
                ids.update(member.record_id for member in members)
        kinds = wanted_kinds | ({self.identity} if needs_identity else set())
        payload = _load_keys(self.spec, ids, kinds) if ids and kinds else {}
        for composite, members in self.buffer:
            self._block(composite, members, payload)
        self.buffer = []
        self.buffered = 0

    def _block(self, composite: tuple[str, ...], members: list[_Member], payload: dict[int, RecordKeys]) -> None:
        rule = self.rule
        if self.single_contact:
            if self._shared(members, payload):
                self.stats.shared_keys += 1
                return
        elif self.shared_sets:
            conditions = [self.driver, *self.joined]
            if any(composite[i] in self.shared_sets.get(c.kind, ()) for i, c in enumerate(conditions)):
                return
        if self.driver.fuzzy and len(members) > MAX_FUZZY_BLOCK:
            self.stats.skipped_blocks += 1
            return
        empty = RecordKeys()
        if rule.staged:
            members = [m for m in members if rule.in_scope(payload.get(m.record_id, empty))]
        if len(members) < 2:
            return
        # Partition by what must be equal: the must-be-equal field, and the values of exact conditions.
        exact_positions = [
            index
            for index, condition in enumerate([self.driver, *self.joined])
            if condition.method == Condition.Method.EXACT
        ]
        parts: dict[tuple, list[_Member]] = defaultdict(list)
        for member in members:
            equal = payload.get(member.record_id, empty).equal(rule.equal_field) if rule.equal_field else ""
            parts[(equal, tuple(member.values[i] for i in exact_positions))].append(member)
        groups_of = list(parts.values())
        if rule.window is not None:
            groups_of = [cluster for part in groups_of for cluster in _time_clusters(part, payload, rule.window)]
        for part in groups_of:
            if len(part) < 2:
                continue
            if self.driver.fuzzy or self.fuzzy_others:
                self._fuzzy_part(composite, part, payload)
            else:
                self._equal_part(composite, part, payload)

    def _shared(self, members: list[_Member], payload: dict[int, RecordKeys]) -> bool:
        holders = len(members)
        if holders > rules.SHARED_KEY_MAX_HOLDERS:
            return True
        if holders < rules.SHARED_KEY_MIN_PEOPLE or not self.identity:
            return False
        people: set[str] = set()
        for member in members:
            record = payload.get(member.record_id)
            if record is not None:
                people.update(record.get(self.identity))
        return rules.is_shared(holders=holders, people=len(people))

    def _record_keys(self, composite, member: _Member, payload) -> RecordKeys:
        record = RecordKeys()
        for kind, key_values in payload.get(member.record_id, RecordKeys()).by_kind.items():
            for key, value in key_values.items():
                record.add(kind, key, value)
        if not self.driver.fuzzy:
            record.add(self.driver.kind, composite[0], member.values[0])
        for index, condition in enumerate(self.joined, start=1):
            record.add(condition.kind, composite[index], member.values[index])
        return record

    def _equal_part(self, composite, part: list[_Member], payload) -> None:
        """Every record of the part has the same keys: one reason, a star of unions."""
        first = self._record_keys(composite, part[0], payload)
        second = self._record_keys(composite, part[1], payload)
        result = rules.evaluate(self.rule, first, second)
        if result is None:  # cannot happen for an equal part, but never union without a rule saying so
            return
        ids = [member.record_id for member in part]
        if self.forest.touches_forbidden(ids):
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    self.forest.union(a, b, result.reason, self.rule.id)
        else:
            head = ids[0]
            for other in ids[1:]:
                self.forest.union(head, other, result.reason, self.rule.id)

    def _fuzzy_part(self, composite, part: list[_Member], payload) -> None:
        if len(part) > MAX_FUZZY_BLOCK:
            self.stats.skipped_blocks += 1
            return
        records = [self._record_keys(composite, member, payload) for member in part]
        if self.driver.fuzzy:
            # The block's values are the normalised values of the driver (blocking rows carry them).
            from dedup.engine import similarity

            values = [member.values[0] for member in part]
            candidates = [(i, j) for i, j, _score in similarity.best_pairs(
                values, self.driver.threshold, kind=self.driver.field.kind
            )]
        else:
            candidates = [(i, j) for i in range(len(part)) for j in range(i + 1, len(part))]
        for i, j in candidates:
            result = rules.evaluate(self.rule, records[i], records[j])
            if result is not None:
                self.forest.union(part[i].record_id, part[j].record_id, result.reason, self.rule.id)

    def _shared_keys(self, kind: str) -> set[str]:
        """Return the keys of a contact kind that are shared (a pass over the kind's blocks), cached per scan."""
        if kind in self.shared_cache:
            return self.shared_cache[kind]
        shared: set[str] = set()
        blocks: list[tuple[str, list[int]]] = []
        current, holders = None, []
        rows = (
            MatchKey.objects.filter(entity=self.spec.key, kind=kind)
            .order_by("key", "record_id")
            .values_list("key", "record_id")
            .iterator(chunk_size=FETCH_SIZE)
        )
        for key, record_id in rows:
            if key != current:
                if current is not None and len(holders) >= rules.SHARED_KEY_MIN_PEOPLE:
                    blocks.append((current, holders))
                current, holders = key, []
            holders.append(record_id)
        if current is not None and len(holders) >= rules.SHARED_KEY_MIN_PEOPLE:
            blocks.append((current, holders))
        small = [(key, ids) for key, ids in blocks if len(ids) <= rules.SHARED_KEY_MAX_HOLDERS]
        shared.update(key for key, ids in blocks if len(ids) > rules.SHARED_KEY_MAX_HOLDERS)
        if self.identity and small:
            names = _load_keys(self.spec, {i for _key, ids in small for i in ids}, {self.identity})
            for key, ids in small:
                people = set()
                for record_id in ids:
                    people.update(names.get(record_id, RecordKeys()).get(self.identity))
                if rules.is_shared(holders=len(ids), people=len(people)):
                    shared.add(key)
        self.shared_cache[kind] = shared
        return shared


def _time_clusters(part: list[_Member], payload: dict[int, RecordKeys], window: int) -> list[list[_Member]]:
    """Split a part into clusters of records placed within `window` seconds of the cluster's first record.

    Sorted by time, each cluster opens with the earliest record not yet placed and takes every later one placed
    within the window of it. Not a chain of neighbours: orders at 0 h, 20 h and 40 h with a 24 h window would
    chain into one group whose first and last are a repeat purchase, which merging would destroy. A record with no
    time is in no cluster (never a duplicate by a rule with a window).
    """
    placed = []
    for member in part:
        moment = payload.get(member.record_id, RecordKeys()).moment
        if moment is not None and moment.isdigit():
            placed.append((int(moment), member.record_id, member))
    placed.sort(key=lambda item: item[:2])
    clusters: list[list[_Member]] = []
    start = None
    for moment, _record_id, member in placed:
        if start is None or moment - start > window:
            clusters.append([])
            start = moment
        clusters[-1].append(member)
    return clusters


def _load_keys(spec: EntitySpec, ids: Iterable[int], kinds: set[str]) -> dict[int, RecordKeys]:
    """Read some kinds of keys of many records: on PostgreSQL one query per LOAD_BATCH ids passed as an array
    (an IN list of thousands of parameters costs more to send and parse than to run), elsewhere IN batches."""
    found: dict[int, RecordKeys] = defaultdict(RecordKeys)
    ids = sorted(ids)
    if db.arrays(connection):
        q = connection.ops.quote_name
        sql = (
            f"SELECT {q('record_id')}, {q('kind')}, {q('key')}, {q('value')} FROM {q(MatchKey._meta.db_table)} "
            f"WHERE {q('entity')} = %s AND {q('kind')} = ANY(%s) AND {q('record_id')} = ANY(%s)"
        )
        with connection.cursor() as cursor:
            for start in range(0, len(ids), LOAD_BATCH):
                cursor.execute(sql, [spec.key, sorted(kinds), ids[start : start + LOAD_BATCH]])
                for record_id, kind, key, value in cursor.fetchall():
                    found[record_id].add(kind, key, value)
        return found
    size = max(100, (connection.features.max_query_params or LOAD_BATCH) - len(kinds) - 10)
    for start in range(0, len(ids), size):
        rows = MatchKey.objects.filter(
            entity=spec.key, record_id__in=ids[start : start + size], kind__in=kinds
        ).values_list("record_id", "kind", "key", "value")
        for record_id, kind, key, value in rows:
            found[record_id].add(kind, key, value)
    return found


def records_count(spec: EntitySpec) -> int:
    """Return how many records of the entity take part (not archived)."""
    manager = spec.model._base_manager
    if spec.archived_attr:
        return manager.filter(**{spec.archived_attr: False}).count()
    return manager.count()
