"""Scored matching end to end on records in memory: read, block, learn without labels, score, explain, group.

The caller gives plain records (dicts of field -> value, or several values) and a schema (field, type, label);
``infer_schema`` guesses the schema from column names and values, so a base needs no configuration at all.
(About 660 lines, past the usual 400; the shared contact values live in shared.py: reading, learning, scoring
and grouping share the Records and the candidate pairs' arrays, and the other helpers of the package call them
as one public surface.)
"""
from __future__ import annotations

import gc
import math
import re
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from dedup.engine.scoring import blocking, clustering, coding, forked, levels, read_apart, sampling, workers
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.explain import Reason, contact_message, level_message
from dedup.engine.scoring.shared import CONTACT_TYPES, model_shared, shared_values
from dedup.engine.scoring.model import (
    FLOOR,
    MAX_PRIOR,
    PRIOR_LOWEST,
    TF_MIN_RECORDS,
    FieldWeights,
    Model,
    contact_compared,
    initial_m,
    learn_m_and_prior,
    names_agree,
    pair_weights,
    probability,
    refine_names,
    u_from_sample,
    value_frequencies,
)

# Pairs at or above this probability are duplicates (the review threshold an entity starts with; the
# administrator sets an entity's own, ScoringModel.threshold). With the prior over all pairs
# (model.prior_over_all_pairs) the probabilities above one half are calibrated: on the CRM set at 1,000,000
# records the pairs scored 0.63 / 0.81 / 0.965 on average are 0.73 / 0.84 / 0.963 matches (below one half
# they are overconfident: 0.16 scored, 0.07 matches). Then "more likely a match than not" is the decision that
# makes the fewest errors, and for the F1 of calibrated probabilities the best threshold is half the best F1
# (Lipton, Elkan and Narayanaswamy, 2014): about 0.49. Measured afterwards (bench/README.md, 2026-12-06
# precision round), F1 at 0.3 / 0.4 / 0.5 / 0.6 / 0.7 / 0.9: 0.9874 / 0.9880 / 0.9880 / 0.9874 / 0.9849 /
# 0.9793 at 1,000,000 records, 0.9915 / 0.9931 / 0.9911 / 0.9908 / 0.9900 / 0.9885 at 100,000.
DEFAULT_THRESHOLD = 0.5
# Random record pairs for u: ten per record, at least 50,000 and at most 500,000. The rare levels of a name (a
# typo, a variant, initials) come up in a few random pairs per million, and 50,000 pairs saw them 0 or 1 times,
# so their weight swung by 3 to 4 bits with the draw (the name typo on the CRM set: +15.2 bits at 100,000
# records, +11.1 at 1,000,000; at 1,000,000 with 500,000 pairs +13.4, with a million +14.4 for the same F1 at 8
# CPU s more). A small base keeps the 50,000 (comparing more would cost more than the rest of its run). The
# exact level needs no sample.
U_SAMPLE_PAIRS = 500_000
U_SAMPLE_MIN = 50_000
U_PAIRS_PER_RECORD = 10
# Random pairs compared at a time (bounds the graders' arrays).
U_SAMPLE_CHUNK = 200_000
# Inside a component up to this size every pair is scored before the groups are split (a few ms each).
FULL_SCORE_MAX = 40
# Inside a component, two clusters join when their cross pairs' average probability reaches this: a member
# must be a likely match of most of the group (one link between two pairs of records averages 1/4 and never
# joins them), yet one weak pair in a group of six (an old record without a birth date) does not split it.
# Febrl 3 (groups up to 6): 18 pairs lost at 0.9, none at 0.5.
GROUP_AVERAGE = 0.5
# An exact agreement vouches for a match (model.learn_m_and_prior) when at most this many records hold the value
# (and, for a phone or email, they are one person): 2 leaves out a typo at a big company, which then never
# gets its weight (CRM 50k: recall 0.90 with 2, 0.97 with 50, precision 0.94 and 0.996).
VOUCH_MAX_HOLDERS = 50


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    label: str = ""
    # Read the field as these columns' values joined by spaces (first + middle + last name as one name);
    # empty: the column ``name``.
    columns: tuple[str, ...] = ()

    def read(self, record: Mapping[str, object]) -> object:
        if not self.columns:
            return record.get(self.name)
        parts = [record.get(column) for column in self.columns]
        return " ".join(str(part) for part in parts if isinstance(part, str) and not c.is_placeholder(part)) or None


@dataclass
class Records:
    """Records read for matching: one column of prepared values per schema field."""

    schema: list[FieldSpec]
    columns: list[Sequence[tuple | None]]
    # Each column coded once (levels.code_column), on first need.
    _coded: dict[int, levels.CodedColumn] = field(default_factory=dict, repr=False, compare=False)
    # Per (field, shared values' id): which distinct values are shared ones (split_shared), with the values.
    _holds: dict[tuple[int, int], tuple] = field(default_factory=dict, repr=False, compare=False)
    # The peak memory of the child process that read some columns (read_apart), in kB, for the bench.
    child_memory_kb: int = field(default=0, repr=False, compare=False)
    # Per field, what the graders read once per distinct value, kept between the passes inside laid_out_kept().
    _laid_out: dict[int, dict] | None = field(default=None, repr=False, compare=False)

    @contextmanager
    def laid_out_kept(self):
        """Keep each column's per-value arrays for the graders (a name's words, a phone's interned numbers)
        between the comparing passes inside (learning's, then scoring's), dropped on the way out."""
        outermost = self._laid_out is None
        if outermost:
            self._laid_out = {}
        try:
            yield
        finally:
            if outermost:
                self._laid_out = None

    @classmethod
    def from_coded(cls, schema: Sequence[FieldSpec], coded: Sequence[levels.CodedColumn]) -> Records:
        """Return records whose columns were coded as they were read (coding.ColumnCoder)."""
        records = cls(list(schema), coding.coded_values(coded))
        records._coded.update(enumerate(coded))
        return records

    def coded(self, position: int) -> levels.CodedColumn:
        coded = self._coded.get(position)
        if coded is None:
            coded = self._coded[position] = levels.code_column(self.columns[position])
        return coded

    @property
    def types(self) -> list[str]:
        return [spec.type for spec in self.schema]

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0


@dataclass
class Result:
    groups: list[list[int]]
    model: Model
    pairs: np.ndarray
    probabilities: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    # Every candidate pair blocked (``pairs`` are those scored: the hopeless ones are left out, _hopeful_pairs).
    candidates: np.ndarray | None = None
    # CPU seconds of this process per step (``timings`` are wall seconds): with several workers a step's CPU
    # may pass its wall time.
    cpu_timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# Schema


_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"e[-_]?mail|почта", c.EMAIL),
    (r"phone|mobile|tel\b|telephone|телефон", c.PHONE),
    (r"birth|dob|date|дата", c.DATE),
    (r"company|organi[sz]ation|employer|\borg\b|компания|организация", c.COMPANY_NAME),
    (r"street_?number|house_?number|\bnumber\b|_num$|номер_дома", c.NUMBER),
    (r"address|street|addr|адрес|улица", c.ADDRESS),
    (r"first|given|surname|last_?name|middle|patronymic|full_?name|^name$|имя|фамилия|отчество", c.PERSON_NAME),
    (r"post_?code|zip|ssn|soc_sec|passport|inn\b|snils|tax|_id$|^id_|\bid\b", c.IDENTIFIER),
)


def infer_type(name: str, values: Sequence[object]) -> str:
    """Return a field type guessed from its name (``date_of_birth`` -> date), else from its values."""
    lowered = name.lower()
    for pattern, field_type in _NAME_RULES:
        if re.search(pattern, lowered):
            return field_type
    sample = [value for value in values[:500] if not c.is_placeholder(value)]
    if sample:
        for field_type in (c.EMAIL, c.DATE, c.PHONE):
            read = sum(1 for value in sample if c.prepare(field_type, value) is not None)
            if read >= 0.8 * len(sample):
                return field_type
    return c.TEXT


def infer_schema(records: Sequence[Mapping[str, object]], *, skip: Sequence[str] = ()) -> list[FieldSpec]:
    """Return a schema for every column of the records (bar ``skip``), types guessed by ``infer_type``."""
    names: list[str] = []
    for record in records[:1000]:
        for name in record:
            if name not in names and name not in skip:
                names.append(name)
    schema = [FieldSpec(name, infer_type(name, [record.get(name) for record in records[:500]]), name) for name in names]
    names_of_person = [spec.name for spec in schema if spec.type == c.PERSON_NAME]
    if len(names_of_person) < 2:
        return schema
    # A person's name split in columns is compared as one name: first and last name swapped, a middle name
    # added or a name typed whole into one column all stay the same name.
    joined = FieldSpec("name", c.PERSON_NAME, "full name", tuple(names_of_person))
    position = next(index for index, spec in enumerate(schema) if spec.type == c.PERSON_NAME)
    rest = [spec for spec in schema if spec.type != c.PERSON_NAME]
    return rest[:position] + [joined] + rest[position:]


_COUNTRY_COLUMN = re.compile(r"country|country_code|страна", re.IGNORECASE)


def infer_region(records: Sequence[Mapping[str, object]]) -> Callable[[Mapping[str, object]], str | None] | None:
    """Return a reader of each record's own country (for its phones) when a column holds ISO country codes."""
    import phonenumbers

    regions = phonenumbers.SUPPORTED_REGIONS
    for name in (records[0] if records else {}):
        if not _COUNTRY_COLUMN.fullmatch(str(name)):
            continue
        values = [record.get(name) for record in records[:500]]
        codes = [value for value in values if isinstance(value, str) and value.upper() in regions]
        if codes and len(codes) >= 0.8 * sum(1 for value in values if value):
            return lambda record, name=name: (str(record.get(name) or "").upper() or None)
    return None


def read_records(records: Iterable[Mapping[str, object]], schema: Sequence[FieldSpec], *,
                 region: Callable[[Mapping[str, object]], str | None] | None = None) -> Records:
    """Return the records read for matching; ``region`` gives a record's own country for its phones."""
    # A value typed the same way again (a country, a big company, a common name) is read once and its prepared
    # form shared: at a million records that is most of the reading time and of the memory the columns take.
    # The records are read a batch at a time, field by field (ColumnCoder.add_all), with the cycle collector
    # held off: every prepared value is a new object among the millions the records hold.
    # A large base's phones are read by a child process meanwhile (read_apart), when it may start one.
    apart = read_apart.start(records, schema, region) if isinstance(records, Sequence) else None
    with no_cycle_collection():
        coded = _read_fields(records, schema, region, skip=apart.positions if apart else ())
        if apart is not None:
            found = apart.result()
            if found is None:  # the child failed: its fields read here, as without it
                here = _read_fields(records, schema, region, only=apart.positions)
                found = {position: here[position] for position in apart.positions}
            coded = [found.get(position, column) for position, column in enumerate(coded)]
        read = Records.from_coded(schema, coded)
        read.child_memory_kb = apart.peak_kb if apart is not None else 0
        return read


def _read_fields(records: Iterable[Mapping[str, object]], schema: Sequence[FieldSpec],
                 region: Callable[[Mapping[str, object]], str | None] | None, *, skip: Sequence[int] = (),
                 only: Sequence[int] | None = None) -> list[levels.CodedColumn | None]:
    """Return the coded columns of the schema's fields (None for those in ``skip`` or not in ``only``)."""
    read = [position for position in range(len(schema)) if position not in skip and (only is None or position in only)]
    coders = {position: coding.ColumnCoder(schema[position].type) for position in read}
    placeholder: dict[str, bool] = {}  # a name part's placeholder check, once per distinct part
    regional = region is not None and any(schema[position].type == c.PHONE for position in read)
    for batch in _batches(records, READ_BATCH):
        regions = [_record_region(region, record) for record in batch] if regional else None
        for position in read:
            spec, coder = schema[position], coders[position]
            if spec.columns:
                raws = _joined_column(spec, batch, placeholder)
            else:
                name = spec.name
                raws = [record.get(name) for record in batch]
            coder.add_all(raws, regions if spec.type == c.PHONE else None)
    return [coders[position].coded() if position in coders else None for position in range(len(schema))]


# Records read per batch (read_records): a batch's raw values are held field by field, never the whole base's.
READ_BATCH = 10_000


def _batches(records: Iterable[Mapping[str, object]], size: int) -> Iterator[Sequence[Mapping[str, object]]]:
    if isinstance(records, Sequence):
        for start in range(0, len(records), size):
            yield records[start:start + size]
        return
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _record_region(region: Callable[[Mapping[str, object]], str | None], record: Mapping[str, object]) -> str | None:
    try:
        return region(record) or None
    except Exception:
        return None


def _joined_column(spec: FieldSpec, batch: Sequence[Mapping[str, object]], placeholder: dict[str, bool]) -> list:
    """Return ``spec.read`` of each record of the batch (a field of several columns), column by column: each
    column's parts are kept (a text that is no placeholder, checked once per distinct part: a first name comes
    back on thousands of records) or dropped (None), then joined record by record."""
    columns = []
    for column in spec.columns:
        parts = [record.get(column) for record in batch]
        for part in dict.fromkeys(part for part in parts if type(part) is str and part not in placeholder):
            placeholder[part] = c.is_placeholder(part)
        columns.append([part if type(part) is str and not placeholder[part] else
                        (part if isinstance(part, str) and not c.is_placeholder(part) else None) for part in parts])
    if len(columns) == 1:
        return [part or None for part in columns[0]]
    if len(columns) == 2:  # first and last name
        return [f"{first} {last}" if first and last else first or last or None for first, last in zip(*columns)]
    return [" ".join([part for part in parts if part]) or None for parts in zip(*columns)]


# ---------------------------------------------------------------------------------------------------------------
# Comparing pairs


def comparison_levels(records: Records, pairs: np.ndarray, *,
                      shared: Sequence[Mapping[str, int] | None] | None = None,
                      fields: Sequence[int] | None = None) -> np.ndarray:
    """Return the level of every pair on every field (pairs x fields, MISSING where a side has no value); each
    distinct pair of values is graded once (levels.column_levels).

    ``shared[field]`` are the contact values several people give (``shared_values``, or a model's
    ``FieldWeights.shared``): a contact field's "different" becomes "different_shared" when one side holds one.
    ``fields``: grade only these positions (the others are left MISSING).
    """
    gammas = np.full((len(pairs), len(records.schema)), c.MISSING, dtype=np.int8)
    positions = range(len(records.schema)) if fields is None else fields
    if len(pairs) <= FEW_PAIRS:  # a pair explained, a small group scored: numpy's set-up would cost more
        rows = pairs.tolist()
        for position in positions:
            column, field_type = records.columns[position], records.types[position]
            gammas[:, position] = [c.compare(field_type, column[a], column[b]) for a, b in rows]
    else:
        lefts, rights = pairs[:, 0], pairs[:, 1]
        # Field by field on the workers' threads, the costliest first (each writes its own column).
        ordered = sorted(positions, key=lambda position: _GRADING_ORDER.get(records.types[position], 9))
        kept = records._laid_out  # learning's and scoring's passes share the graders' per-value arrays

        def grade(position: int) -> None:
            cache = kept.setdefault(position, {}) if kept is not None else None
            gammas[:, position] = levels.column_levels(records.types[position], records.coded(position), lefts,
                                                       rights, cache=cache)

        workers.run_map(grade, ordered, workers=1 if len(pairs) > FIELDS_ON_THREADS_MAX_PAIRS else None)
    if shared is not None:
        split_shared(records, pairs, gammas, shared)
    return gammas


# Up to this many pairs are compared one by one (comparisons.compare), more by distinct value pairs.
FEW_PAIRS = 64
# The order fields are handed to the workers' threads: the longest to grade first (at 1,000,000 CRM records the
# names take 10 CPU s, phones 5, companies 4, emails 3, dates 2, a country a fraction), so the last one a
# thread takes is short.
# More pairs than this have their fields graded one after the other (each field's name chunks still on the
# workers' threads): at 1,000,000 CRM records two fields of the 11.9 million candidates at once held 420 MB more
# and the step took no less wall time (2026-12-06 10:15-10:21, load 2-4, one run each: comparing 33.1 s with
# every field on threads, 24.2 s with this bound, 29.6 s with fields never on threads, 32.5 s with one worker).
# Learning's pass (the EM sample and the random pairs, 900,000 pairs) stays on threads.
FIELDS_ON_THREADS_MAX_PAIRS = 2_000_000
_GRADING_ORDER = {c.PERSON_NAME: 0, c.PHONE: 1, c.COMPANY_NAME: 2, c.ADDRESS: 3, c.EMAIL: 4, c.TEXT: 5, c.DATE: 6}


def split_shared(records: Records, pairs: np.ndarray, gammas: np.ndarray,
                 shared: Sequence[Mapping[str, int] | None]) -> None:
    """Turn a contact field's "different" into "different_shared" (in place) where one side holds a shared value.

    Two records of one person often differ on a phone when one of them gives the office switchboard (or the
    family mailbox) and the other the person's own line; they rarely differ on two lines each held by one
    person, which is what two namesakes at one company show. The independence of the fields fails there (the
    same company makes a shared switchboard likely), so the two kinds of disagreement get their own m and u.
    """
    for position, (column, field_type) in enumerate(zip(records.columns, records.types)):
        values = shared[position] if position < len(shared) else None
        if not values or field_type not in CONTACT_TYPES or not len(pairs):
            continue
        type_levels = c.LEVELS[field_type]
        rows = np.flatnonzero(gammas[:, position] == len(type_levels) - 1)
        if not len(rows):
            continue

        def holds(value, field_type=field_type, values=values) -> bool:
            return any(c.exact_key(field_type, item) in values for item in value or ())

        ends = pairs[rows]
        if len(pairs) <= FEW_PAIRS:
            held = {row: holds(column[row]) for row in set(ends.ravel().tolist())}
            marked = np.array([held[a] or held[b] for a, b in ends.tolist()], dtype=bool)
        else:  # once per distinct value and shared list (code -1, missing, never holds one)
            coded = records.coded(position)
            cached = records._holds.get((position, id(values)))
            if cached is None or cached[0] is not values:
                shared_keys = values.keys() if isinstance(values, Mapping) else frozenset(values)
                cached = records._holds[(position, id(values))] = (values, np.array(
                    [not shared_keys.isdisjoint(keys) for keys in c.column_exact_keys(field_type, coded.values)]
                    + [False], dtype=bool))
            held = cached[1]
            marked = held[coded.codes[ends[:, 0]]] | held[coded.codes[ends[:, 1]]]
        gammas[rows[marked], position] = type_levels.index(c.DIFFERENT_SHARED)


def agreed_values(records: Records, pairs: np.ndarray, gammas: np.ndarray) -> list:
    """Return, per field, the value each pair shares exactly (None where its level is not exact): a list per
    field for a few pairs, a levels.AgreedColumn (indexed the same way, kept as codes) for many."""
    if len(pairs) <= FEW_PAIRS:
        rows = pairs.tolist()
        return [[c.exact_agreement(field_type, column[a], column[b]) if level == 0 else None
                 for (a, b), level in zip(rows, gammas[:, position].tolist())]
                for position, (column, field_type) in enumerate(zip(records.columns, records.types))]
    lefts, rights = pairs[:, 0], pairs[:, 1]
    return workers.run_map(lambda position: levels.column_agreed(records.types[position], records.coded(position),
                                                                 lefts, rights, gammas[:, position]),
                           range(len(records.types)))


# ---------------------------------------------------------------------------------------------------------------
# Learning


def u_sample_size(records: int) -> int:
    """Return how many random pairs learning compares for u on a base of this many records."""
    return min(U_SAMPLE_PAIRS, max(U_SAMPLE_MIN, U_PAIRS_PER_RECORD * records))


def random_pairs(size: int, count: int, *, seed: int = 1) -> np.ndarray:
    """Return up to ``count`` distinct random pairs of distinct rows (all pairs when there are fewer)."""
    if size < 2:
        return np.empty((0, 2), dtype=np.int64)
    total = size * (size - 1) // 2
    if total <= count:
        left, right = np.triu_indices(size, 1)
        return np.stack([left, right], axis=1).astype(np.int64)
    generator = np.random.default_rng(seed)
    left = generator.integers(0, size, count * 2)
    right = generator.integers(0, size, count * 2)
    keep = left != right
    low, high = np.minimum(left[keep], right[keep]), np.maximum(left[keep], right[keep])
    codes = levels.distinct(low * size + high)[:count]
    return np.stack([codes // size, codes % size], axis=1)


def candidate_pairs(records: Records, *, max_block: int = blocking.DEFAULT_MAX_BLOCK) -> np.ndarray:
    """Return the records' blocked candidate pairs (blocking.candidate_pairs on the coded columns)."""
    return blocking.candidate_pairs(records.columns, records.types, max_block=max_block,
                                    coded=[records.coded(position) for position in range(len(records.schema))])


def learn(records: Records, pairs: np.ndarray | None = None, *, u_sample: int | None = None,
          em_sample: int = sampling.EM_SAMPLE_PAIRS, seed: int = 1, gammas: np.ndarray | None = None,
          agreed: list[list[str | None]] | None = None, shared: list[dict[str, int]] | None = None,
          sampled: np.ndarray | None = None,
          stratified: tuple[np.ndarray, np.ndarray | None] | None = None,
          weighed: tuple[list[FieldWeights], list[float]] | None = None) -> Model:
    """Return a model learned from the records alone: u by random pairs and frequencies, m by vouched pairs and EM,
    the prior as the probability that two random records match (model.prior_over_all_pairs).

    ``pairs`` are the blocked candidate pairs (found here when not given), ``gammas`` their levels if known
    (compared with ``shared``, the records' ``shared_values``, found here when not given). m and the prior are
    learned from at most ``em_sample`` of the pairs, a stratified sample each pair of which weighs for the pairs
    of its stratum (sampling.stratified_sample; every pair when there are fewer): only those are compared.
    ``sampled``: the levels of ``random_pairs(len(records), u_sample, seed=seed)`` when compared already.
    ``stratified``: ``sampling.stratified_sample``'s rows and weights for these pairs when drawn already; then
    ``gammas`` and ``agreed`` (when given) are those of the sampled rows only. ``weighed``: ``field_weights`` of
    these records, ``sampled`` and ``shared`` when found already (learning sets their m: used once).
    """
    if pairs is None:
        pairs = candidate_pairs(records)
    if shared is None:
        shared = shared_values(records)
    if sampled is None:
        sample = random_pairs(len(records), u_sample or u_sample_size(len(records)), seed=seed)
        sampled = np.concatenate([comparison_levels(records, sample[start:start + U_SAMPLE_CHUNK], shared=shared)
                                  for start in range(0, max(len(sample), 1), U_SAMPLE_CHUNK)])
    fields, one_other = weighed if weighed is not None else field_weights(records, sampled, shared)
    model = Model(fields=fields, prior=0.05)
    candidates = len(pairs)
    if stratified is not None:  # drawn by the caller, who compared those rows only
        rows, sample_weights = stratified
        pairs = pairs[rows] if sample_weights is not None else pairs
    else:
        rows, sample_weights = sampling.stratified_sample(
            [records.coded(position) for position in range(len(records.schema))], pairs, em_sample, seed=seed)
        if sample_weights is not None:  # learned from the sample: its levels, compared here unless given
            pairs = pairs[rows]
            if gammas is not None:
                gammas = gammas[rows]
                agreed = _agreed_rows(agreed, rows) if agreed is not None else None
            else:
                agreed = None
    if gammas is None:
        gammas = comparison_levels(records, pairs, shared=shared)
    if agreed is None:
        agreed = agreed_values(records, pairs, gammas)
    rare = []
    for weights, values, share in zip(fields, agreed, one_other):
        limit = (VOUCH_MAX_HOLDERS - 1) * share

        def is_rare(value, weights=weights, limit=limit) -> bool:
            return weights.tf.get(value, 0.0) <= limit and value not in weights.shared

        if isinstance(values, levels.AgreedColumn):
            flags = np.array([is_rare(value) for value in values.values] + [True], dtype=bool)
            rare.append(flags[np.where(values.codes < 0, len(values.values), values.codes)])
        else:
            rare.append(np.array([value is None or is_rare(value) for value in values], dtype=bool))
    candidate_prior, model.iterations = learn_m_and_prior(gammas, fields, rare=rare, sample_weights=sample_weights)
    # u is the chance of a level between two RANDOM records, so the prior it is weighed against must be the
    # probability that two random records match, not the share of matches among the candidates (blocking made
    # those far likelier to match), as Splink's "probability two random records match": scoring a candidate
    # with the candidates' prior counts the blocking key twice and makes namesakes look like duplicates. The
    # candidates' EM prior scaled to all pairs is an upper bound (it counts look-alikes as part-matches);
    # model.prior_over_all_pairs finds the prior that the learned weights of the candidates bear out, and
    # model.refine_names the names' m under it (CRM 1,000,000: 2.10e-7, the truth's 2.05e-7; the scaled EM
    # prior was 12-15 times that).
    all_pairs = len(records) * (len(records) - 1) / 2
    if all_pairs:
        start = float(np.clip(candidate_prior * candidates / all_pairs, PRIOR_LOWEST, MAX_PRIOR))
        model.prior = start
        refine_names(model, gammas, agreed, all_pairs, start=start, sample_weights=sample_weights,
                     contact_share=contact_share(model, sampled))
    else:
        model.prior = candidate_prior
    return model


def field_weights(records: Records, sampled: np.ndarray,
                  shared: list[dict[str, int]]) -> tuple[list[FieldWeights], list[float]]:
    """Return each field's weights before m is learned (u from the random pairs' levels ``sampled``, the term
    frequencies, the shared contacts), and each field's share of one other holder (1 / (holders - 1)): what
    learning needs of the records alone, not of the candidate pairs."""
    fields = []
    one_other = []
    for position, spec in enumerate(records.schema):
        coded = records.coded(position)
        # Counted per distinct value: each value's keys once, weighed by how many records hold it.
        held = np.bincount(coded.codes[coded.codes >= 0], minlength=len(coded.values)).tolist()
        keys = [value_keys if len(value_keys) == 1 else set(value_keys)  # a key counted once per value
                for value_keys in c.column_exact_keys(spec.type, coded.values)]
        share, tf, holders, floor = value_frequencies(keys, held)
        u = u_from_sample(spec.type, sampled[:, position], share if holders >= 2 else None)
        weights = FieldWeights(spec.name, spec.type, initial_m(spec.type), u, label=spec.label or spec.name)
        # A value two records share and nobody else: Good-Turing's chance (model.seen_once_share), at most one
        # other record's share.
        one_other.append(1 / (holders - 1) if holders > 1 else 0.0)
        if len(records) >= TF_MIN_RECORDS:
            weights.tf = {value: share for value, share in tf.items() if share > one_other[-1]}
            weights.tf_floor = floor
        weights.shared = shared[position]
        fields.append(weights)
    return fields, one_other


def contact_share(model: Model, sampled: np.ndarray) -> float | None:
    """Return the share of the random pairs with person names on both records whose records both hold a contact
    (model.contact_compared), or None when there are none."""
    names = [position for position, weights in enumerate(model.fields) if weights.type == c.PERSON_NAME]
    if not names or not len(sampled):
        return None
    named = sampled[(sampled[:, names] != c.MISSING).any(axis=1)]
    return float(contact_compared(model, named).mean()) if len(named) else None


def _agreed_rows(agreed: list, rows: np.ndarray) -> list:
    """Return ``agreed_values``' columns of these rows of the pairs only."""
    return [levels.AgreedColumn(column.codes[rows], column.values) if isinstance(column, levels.AgreedColumn)
            else [column[row] for row in rows.tolist()] for column in agreed]


# ---------------------------------------------------------------------------------------------------------------
# Scoring, explaining, grouping


def score(model: Model, records: Records, pairs: np.ndarray, gammas: np.ndarray | None = None,
          agreed: list[list[str | None]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return each pair's match weight (log2 odds, term frequencies applied) and match probability."""
    if gammas is None:
        gammas = comparison_levels(records, pairs, shared=model_shared(model))
    if agreed is None:
        agreed = agreed_values(records, pairs, gammas)
    weights = pair_weights(model, gammas, agreed)
    return weights, probability(weights)


def explain(model: Model, records: Records, left: int, right: int) -> tuple[float, list[Reason]]:
    """Return a pair's match probability and each field's contribution, strongest evidence first."""
    return explain_pairs(model, records, [(left, right)])[0]


def explain_pairs(model: Model, records: Records,
                  pairs: Sequence[tuple[int, int]]) -> list[tuple[float, list[Reason]]]:
    """Return ``explain`` of each pair, compared FEW_PAIRS at a time (the pair by pair grading of a few pairs, so
    each pair's figures are those ``explain`` gives it alone; the scan explains tens of thousands of groups, and
    a pair at a time most of the time went to setting up the small arrays)."""
    shared = model_shared(model)
    found = []
    for start in range(0, len(pairs), FEW_PAIRS):
        chunk = np.array(pairs[start:start + FEW_PAIRS], dtype=np.int64).reshape(-1, 2)
        gammas = comparison_levels(records, chunk, shared=shared)
        agreed = agreed_values(records, chunk, gammas)
        agree, contact = names_agree(model, gammas).tolist(), contact_compared(model, gammas).tolist()
        for row, levels_of_pair in enumerate(gammas.tolist()):
            found.append(_explained(model, levels_of_pair, [column[row] for column in agreed], agree[row],
                                    contact[row]))
    return found


def _explained(model: Model, gammas: Sequence[int], agreed: Sequence[str | None], agree: bool,
               contact: bool) -> tuple[float, list[Reason]]:
    """Return a pair's probability and reasons from its levels, exact agreements, and whether its names agree and
    both records hold a contact."""
    reasons = []
    total = model.prior_log2
    for position, weights in enumerate(model.fields):
        level = gammas[position]
        if level == c.MISSING:
            reasons.append(Reason(level_message(None, weight=0.0), weights.label, 0.0))
            continue
        weight = weights.bayes_factor_log2(level, agreed[position], names_agree=agree, contact=contact)
        total += weight
        # A name weighed with the contacts' being there (FieldWeights.m_contact): that part is a reason of its own.
        apart = weights.contact_log2(contact)
        message = level_message(weights.levels[level], weight=weight - apart,
                                average_exact_weight=weights.bayes_factor_log2(0, contact=contact) - apart)
        reasons.append(Reason(message, weights.label, weight - apart))
        if weights.m_contact is not None:
            reasons.append(Reason(contact_message(contact), weights.label, apart))
    reasons.sort(key=lambda reason: -abs(reason.weight))
    return float(probability(total)), reasons


def find_groups(records: Records, *, model: Model | None = None, threshold: float = DEFAULT_THRESHOLD,
                max_block: int = blocking.DEFAULT_MAX_BLOCK, pairs: np.ndarray | None = None) -> Result:
    """Return the groups of duplicates among the records (lists of row numbers), learning a model if none given;
    ``pairs``: the records' candidate pairs when already blocked (by the learning that gave the model)."""
    with no_cycle_collection():
        if model is not None:  # one comparing pass: nothing to keep between passes
            return _find_groups(records, model=model, threshold=threshold, max_block=max_block, pairs=pairs)
        with records.laid_out_kept():
            return _find_groups(records, model=model, threshold=threshold, max_block=max_block, pairs=pairs)


@contextmanager
def no_cycle_collection():
    """Hold Python's cycle collector off: the steps allocate millions of small objects (token lists, value pairs)
    among the millions the read records hold, and each collection walks them all (CRM 100k: 9.1 -> 7.2 CPU s).
    Reference counting still frees every acyclic object at once; the few cycles wait for the next collection.

    On the way out, the objects allocated meanwhile are put with the old ones (``gc.freeze`` then ``unfreeze``
    moves every tracked object to the oldest generation at no cost): otherwise the first young collection
    after this walks all of them, and counts them towards a full one (CRM 100k: 0.3 CPU s after reading and
    grouping). Not when something else keeps objects frozen (a server's pre-fork freeze), which ``unfreeze``
    would undo; the nested uses leave it to the outermost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _find_groups(records: Records, *, model: Model | None, threshold: float, max_block: int,
                 pairs: np.ndarray | None) -> Result:
    clock = _Clock()
    for position in range(len(records.schema)):  # each column coded once, here, before the threads read it
        records.coded(position)
    # A large base learned from scratch shares its steps with forked children (forked.py): one blocks while this
    # process does what does not depend on the pairs; another, forked once they are known, compares its share
    # of them (every field but the names) while this process learns, then takes the learned model and finishes
    # its share. Not with a known model (the scan's scored chunk, whose worker must stay within its memory
    # bound, a child's pages counted too).
    apart = model is None and _forks(records)
    sampled = weighed = None
    if apart and pairs is None:
        # Meanwhile this process finds the shared contact values, compares learning's random pairs (u; it lays
        # out each column's distinct values for the graders, which the comparing child then inherits) and weighs
        # each field by them and by its values' frequencies: the blocking step's wall time covers both, its CPU
        # time both processes'.
        clock.lap()
        blocked = forked.start(lambda _link: candidate_pairs(records, max_block=max_block), name="blocking")
        try:
            shared = shared_values(records)
            sampled = comparison_levels(records, random_pairs(len(records), u_sample_size(len(records))),
                                        shared=shared)
            weighed = field_weights(records, sampled, shared)
            pairs = blocked.result()
        except BaseException:
            blocked.cancel()
            raise
        clock.lap("blocking")
        shared_found = lambda: shared  # noqa: E731
    else:
        # Learning needs the shared contact values, which blocking does not change: with several workers they
        # are found on a thread of their own while the pairs are blocked.
        shared_found = workers.background(lambda: shared_values(records)) if model is None else None
    if pairs is None:
        clock.lap()
        pairs = candidate_pairs(records, max_block=max_block)
        clock.lap("blocking")
    clock.lap()
    share = _child_share(len(pairs)) if apart else 0
    child = forked.start(lambda link: _compared_apart(records, pairs[len(pairs) - share:], threshold, link),
                         name="comparing") if share else None
    try:
        model, model_learned, sample_weights, compared = _learned(records, model, pairs, shared_found, sampled,
                                                                  weighed, clock)
        if model_learned is None or sample_weights is not None:  # else every candidate is compared already
            if child is not None:
                child.send((model, _shared_flags(records, model)))
                mine = _hopeful_pairs(model, records, pairs[:len(pairs) - share], threshold)
                compared = _joined(mine, child.result())
            else:
                compared = _hopeful_pairs(model, records, pairs, threshold)
        elif child is not None:
            child.send(None)
            child.result()
    except BaseException:
        if child is not None:
            child.cancel()
        raise
    candidates, (pairs, gammas, agreed) = pairs, compared
    if records._laid_out:  # compared: the graders' arrays are not read again
        records._laid_out.clear()
    clock.lap("comparing")
    _weights, probabilities = score(model, records, pairs, gammas, agreed)
    clock.lap("scoring")
    groups = group(model, records, pairs, probabilities, threshold)
    clock.lap("grouping")
    return Result(groups, model, pairs, probabilities, clock.wall, candidates, clock.cpu)


def _learned(records: Records, model: Model | None, pairs: np.ndarray, shared_found, sampled: np.ndarray | None,
             weighed, clock: _Clock) -> tuple[Model, Model | None, np.ndarray | None, tuple | None]:
    """Return the model (learned when none is given), the one learned (or None), the learning sample's weights
    (None when every candidate was compared) and, in that case, the candidates' (pairs, levels, agreements)."""
    if model is not None:
        return model, None, None, None
    # Learning reads the levels of a stratified sample of the candidates (m and the prior) and of random pairs
    # (u): only those are compared first, in one pass over each column (a column's distinct values are laid out
    # once, not twice). Then every candidate is compared as with a known model: the person names only where they
    # could lift the pair to HOPELESS (at 1,000,000 CRM records most candidates cannot).
    shared = shared_found()
    rows, sample_weights = sampling.stratified_sample(
        [records.coded(position) for position in range(len(records.schema))], pairs)
    learned = pairs[rows] if sample_weights is not None else pairs
    if sampled is None:
        sample = random_pairs(len(records), u_sample_size(len(records)))
        both = comparison_levels(records, np.concatenate([learned, sample]), shared=shared)
        gammas, sampled = both[:len(learned)], both[len(learned):]
        del both
    else:  # the random pairs compared during blocking
        gammas = comparison_levels(records, learned, shared=shared)
    agreed = agreed_values(records, learned, gammas)
    clock.lap("comparing")
    model = learn(records, pairs, gammas=gammas, agreed=agreed, shared=shared, sampled=sampled,
                  stratified=(rows, sample_weights), weighed=weighed)
    clock.lap("learning")
    return model, model, sample_weights, (pairs, gammas, agreed) if sample_weights is None else None


class _Clock:
    """Wall and CPU seconds per step, a step being the time since the previous lap (added up per name); the CPU
    of this process and of the children it waited for meanwhile (forked.py's)."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def lap(self, name: str | None = None) -> None:
        wall, cpu = time.perf_counter(), self._cpu_now()
        if name is not None:
            self.wall[name] = self.wall.get(name, 0.0) + wall - self._wall
            self.cpu[name] = self.cpu.get(name, 0.0) + cpu - self._cpu
        self._wall, self._cpu = wall, cpu


# With a known model, a candidate pair that cannot reach this probability whatever its names' level is left out
# before its names are graded: below the threshold it joins no group, and group() reads the pairs of a big
# component only above 0.01 (its average linkage counts a pair left out as 0).
HOPELESS = 0.01


def _hopeful_pairs(model: Model, records: Records, pairs: np.ndarray, threshold: float, *,
                   early: tuple[np.ndarray, list] | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Return the candidate pairs that may reach HOPELESS (or the threshold when lower), with their levels and
    exact agreements: every field but the person names is graded first, the names only for the pairs whose best
    name level could lift them that far (an exact bound: the best weight a name field can give, term
    frequencies included, and every shared contact counted as when the names agree).

    ``early``: ``_levels_but_names`` of these pairs, found before the model was known."""
    names = _name_fields(records)
    shared = model_shared(model)
    if not names or len(pairs) <= FEW_PAIRS:
        gammas = comparison_levels(records, pairs, shared=shared)
        return pairs, gammas, agreed_values(records, pairs, gammas)
    gammas, agreed = early if early is not None else _levels_but_names(records, pairs)
    split_shared(records, pairs, gammas, shared)
    probe = gammas.copy()
    probe[:, names] = 0  # names agreeing exactly: the shared contacts' weights at their highest
    bound = pair_weights(model, probe, agreed)
    for position in names:
        bound += _best_weight(model.fields[position]) - model.fields[position].bayes_factor_log2(0)
    lowest = min(HOPELESS, threshold)
    floor = math.log2(lowest / (1 - lowest)) if lowest > 0 else -math.inf
    keep = np.flatnonzero(bound >= floor - 1e-9)
    pairs, gammas = pairs[keep], gammas[keep]
    gammas[:, names] = comparison_levels(records, pairs, fields=names)[:, names]
    agreed = [levels.AgreedColumn(column.codes[keep], column.values) if position not in names else
              levels.column_agreed(records.types[position], records.coded(position), pairs[:, 0], pairs[:, 1],
                                   gammas[:, position])
              for position, column in enumerate(agreed)]
    return pairs, gammas, agreed


def _name_fields(records: Records) -> list[int]:
    return [position for position, field_type in enumerate(records.types) if field_type == c.PERSON_NAME]


def _levels_but_names(records: Records, pairs: np.ndarray) -> tuple[np.ndarray, list]:
    """Return the pairs' levels on every field but the person names (MISSING there), before the shared contacts
    are split off (split_shared: it changes no exact level), and their exact agreements."""
    names = _name_fields(records)
    others = [position for position in range(len(records.schema)) if position not in names]
    gammas = comparison_levels(records, pairs, fields=others)
    return gammas, agreed_values(records, pairs, gammas)


def _compared_apart(records: Records, pairs: np.ndarray, threshold: float,
                    link: forked.Link) -> tuple[np.ndarray, np.ndarray, list] | None:
    """In a forked child: compare these pairs on every field but the names, then take the learned model (and the
    shared contacts' flags, _shared_flags) from the parent and return ``_hopeful_pairs`` of them; None when the
    parent sends no model (every candidate was compared while learning)."""
    early = _levels_but_names(records, pairs) if _name_fields(records) and len(pairs) > FEW_PAIRS else None
    sent = link.receive()
    if sent is None:
        return None
    model, flags = sent
    for position, held in flags.items():  # under the unpickled model's own shared values
        values = model.fields[position].shared
        records._holds[(position, id(values))] = (values, held)
    return _hopeful_pairs(model, records, pairs, threshold, early=early)


def _shared_flags(records: Records, model: Model) -> dict[int, np.ndarray]:
    """Return split_shared's flags of which distinct values are shared ones, found already for this model's
    shared values: a forked child keeps them under the model it unpickles (at 1,000,000 CRM records they take a
    second to find again)."""
    found = {}
    for position, weights in enumerate(model.fields):
        cached = records._holds.get((position, id(weights.shared)))
        if cached is not None and cached[0] is weights.shared:
            found[position] = cached[1]
    return found


def _child_share(pairs: int) -> int:
    """Return how many of the candidate pairs (the last ones) a forked child compares: none of a few."""
    return round(pairs * CHILD_SHARE) if pairs >= FORK_MIN_PAIRS else 0


def _joined(first: tuple[np.ndarray, np.ndarray, list], second: tuple[np.ndarray, np.ndarray, list]):
    """Return two halves' (pairs, levels, exact agreements) as one, the second half's agreements recoded."""
    agreed = []
    for left, right in zip(first[2], second[2]):
        values = list(left.values)
        index = {value: code for code, value in enumerate(values)}
        for value in right.values:
            if value not in index:
                index[value] = len(values)
                values.append(value)
        recode = np.array([index[value] for value in right.values] + [-1], dtype=np.int32)
        agreed.append(levels.AgreedColumn(np.concatenate([left.codes, recode[right.codes]]), values))
    return np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]), agreed


def _forks(records: Records) -> bool:
    """Tell whether a base this large may have its steps shared with forked children (forked.py)."""
    return len(records) >= FORK_MIN_RECORDS and workers.count() > 1 and forked.available()


# Records at least for the forked children (forked.py): below, the children's copy-on-write faults and pickled
# arrays cost about what they save (CRM 100,000, 2026-12-06, back to back with main: 4.9 / 5.5 s against 4.8 /
# 5.3 s, the same CPU); at 1,000,000 they take 20 s off find_groups.
FORK_MIN_RECORDS = 200_000
# Candidate pairs at least for comparing in two shares.
FORK_MIN_PAIRS = 200_000
# The comparing child's share of the candidate pairs: it starts while this process learns (the stratified
# sample, its levels and EM: at 1,000,000 CRM records about 5 s), so it takes more than half.
CHILD_SHARE = 0.6


def _best_weight(weights: FieldWeights) -> float:
    """Return the highest log2(m/u) a field can give a pair: its best level, or an exact agreement on its rarest
    value (FieldWeights.bayes_factor_log2 never takes u below ``tf_floor`` there; a shared value only raises u)."""
    sides = (None,) if weights.m_contact is None else (False, True)
    best = max(weights.bayes_factor_log2(level, contact=side) for level in range(len(weights.m)) for side in sides)
    if weights.tf or weights.tf_floor:
        # The rarest value's weight: the level's best side with u at the floor's share of it.
        best = max(best, *(weights.bayes_factor_log2(0, contact=side) + math.log2(
            max(weights.u[0], FLOOR) / max(weights.tf_floor, FLOOR)) for side in sides))
    return max(best, 0.0)


def group(model: Model, records: Records, pairs: np.ndarray, probabilities: np.ndarray,
          threshold: float) -> list[list[int]]:
    """Return the groups: components of the pairs above the threshold, split by average linkage."""
    strong = pairs[probabilities >= threshold]
    found = clustering.components(map(tuple, strong.tolist()))
    known: dict[tuple[int, int], float] = {}
    big = [members for members in found if len(members) > FULL_SCORE_MAX]
    if big:  # the scored pairs inside big components, looked up below
        inside = np.zeros(len(records), dtype=bool)
        inside[[member for members in big for member in members]] = True
        keep = (probabilities > 0.01) & inside[pairs[:, 0]] & inside[pairs[:, 1]]
        known = {(a, b): p for (a, b), p in zip(pairs[keep].tolist(), probabilities[keep].tolist())}
    result: list[list[int]] = []
    for members in found:
        if len(members) == 2:
            result.append(members)
            continue
        component = {}
        if len(members) <= FULL_SCORE_MAX:
            every = np.array([(a, b) for i, a in enumerate(members) for b in members[i + 1:]], dtype=np.int64)
            _weights, values = score(model, records, every)
            component = {(int(a), int(b)): float(p) for (a, b), p in zip(every.tolist(), values.tolist())}
        else:
            member_set = set(members)
            component = {pair: p for pair, p in known.items() if pair[0] in member_set and pair[1] in member_set}
        bar = min(threshold, GROUP_AVERAGE)
        result.extend(clustering.average_linkage(
            members, component, bar, lambda left, right: pooled_probability(model, records, left, right) >= bar))
    return result


def pooled_probability(model: Model, records: Records, left: Sequence[int], right: Sequence[int]) -> float:
    """Return the match probability of two clusters compared as two records, each holding its members' values.

    Pair by pair, a copy that has only a name and a company looks like both of two namesakes at one company and
    joins them, on average, into one group; pooled, one cluster's phone and email against the other's tell
    them apart. A record that matches most of a group but misses a field (an old record without a birth date)
    still joins: the group's other records hold the field.
    """
    columns = []
    for column in records.columns:
        pooled = []
        for side in (left, right):
            values = []
            for row in side:
                for item in column[row] or ():
                    if item not in values:
                        values.append(item)
            pooled.append(tuple(values) or None)
        columns.append(pooled)
    _weights, probabilities = score(model, Records(records.schema, columns), np.array([[0, 1]], dtype=np.int64))
    return float(probabilities[0])


def group_pairs(groups: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    """Return every pair of records that share a group."""
    found = set()
    for members in groups:
        ordered = sorted(members)
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                found.add((a, b))
    return found


