"""The Fellegi–Sunter model: m and u per field and level, the match prior, and how they are learned and applied.

- u (how often two *different* records reach a level) comes from the data without labels: the exact level
  from the value frequencies (sum over values of both records holding it, exact for any base size), the other
  levels from a random sample of record pairs (Splink's ``estimate_u_using_random_sampling``);
- m (how often two records of *one* person reach a level) by expectation-maximisation over the candidate pairs,
  u held fixed (Splink's ``estimate_parameters_using_expectation_maximisation``); the EM runs on the distinct
  comparison patterns with their counts, so its cost does not grow with the number of pairs;
- the prior lambda, the probability that two random records match (Splink's
  ``estimate_probability_two_random_records_match``), as the expected matches among the candidates under the
  learned Bayes factors over all pairs, solved for consistency (``prior_over_all_pairs``);
- managers' decisions refine both: ``fold_labels`` adds labelled pairs to m (merges) or u (not a duplicate) as
  counts on top of the learned estimate, which weighs as ``LABEL_PRIOR_STRENGTH`` pairs;
- a pair's match weight is log2(lambda / (1 - lambda)) plus each field's log2 Bayes factor log2(m / u); on an
  exact agreement u is replaced by the agreed value's own frequency (term-frequency adjustment), so a rare
  surname counts more than "Ivanov";
- a person name is weighed jointly with whether both records hold a contact (``FieldWeights.m_contact``): how a
  name is typed depends on how the record was filled in (a quick entry with a name and a company carries the
  typos and nicknames; a record given with a phone or an email its owner's name as written there), so the
  name's levels are not independent of the contacts' being there, and the missing contacts are not ignorable.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dedup.engine.scoring.comparisons import EMAIL, LEVELS, MISSING, PERSON_NAME, PHONE
from dedup.engine.scoring.graders import distinct_inverse

# Probabilities are kept inside [FLOOR, 1 - FLOOR]: a level never seen is very weak evidence, not infinite.
FLOOR = 1e-6
EM_MAX_ITERATIONS = 40
EM_TOLERANCE = 1e-5
# How many pairs the learned m and u weigh against managers' labels in fold_labels.
LABEL_PRIOR_STRENGTH = 20.0
# A term frequency is never taken below this many records' worth: two records with a value seen nowhere else
# are strong evidence, but not more than a value held by two records.
TF_MIN_COUNT = 2
# Term frequencies are counted on a base of at least this many records. On a smaller one a value's count is
# mostly its own duplicates': four records of one customer with one phone and one name are 5 % of a base of 84,
# which made both "common values" worth 4 bits less each, and the learned prior fell to PRIOR_LOWEST with the
# four scored at 0 % (where the truth's share of pairs is 1.7e-3). Every benchmark set holds 1,000 records or more.
TF_MIN_RECORDS = 1000
# Contact fields: values one person owns (a phone, an email); a value several people hold is a shared line.
CONTACT_TYPES = (PHONE, EMAIL)


@dataclass
class FieldWeights:
    """The m and u of one field's levels (LEVELS[type] order) and its values' frequencies."""

    name: str
    type: str
    m: list[float]
    u: list[float]
    label: str = ""
    # Exact value -> the chance that another record holding this field holds this value too: (count - 1) /
    # (holders - 1), leave-one-out (a value held by two records is one other record's, not two). Values not
    # listed are rare: ``tf_floor``, the share of one other record (a stored model keeps only the frequent ones).
    tf: dict[str, float] = field(default_factory=dict)
    tf_floor: float = 0.0
    # Contact values (a phone, an email) held by records of several different people -> how many people: an
    # office switchboard or a family mailbox. Agreeing on one says "same office", not "same person".
    shared: dict[str, int] = field(default_factory=dict)
    # A person name's levels counted with whether both records of the pair hold a contact (``contact_compared``):
    # per level, the share of matches (of non-matches) that reach it AND both hold one; the rest of ``m`` (``u``)
    # is the pairs where at most one record does. Learned by ``refine_names``; None: the name weighs alone.
    m_contact: list[float] | None = None
    u_contact: list[float] | None = None

    @property
    def levels(self) -> tuple[str, ...]:
        return LEVELS[self.type]

    def bayes_factor_log2(self, level: int, agreed: str | None = None, *, names_agree: bool = False,
                          contact: bool | None = None) -> float:
        """Return log2(m/u) of a level; ``agreed`` is the value an exact agreement is on (term frequency).

        ``names_agree``: the pair's person names agree (exactly, as variants or with a typo). A shared phone or
        email then counts at its own frequency: the office or family that shares it is told apart by the name,
        and these two records carry one name.
        ``contact``: whether both records hold a contact (``contact_compared``); with ``m_contact`` learned, the
        level is weighed jointly with it (None: alone, as the administrator's table shows it).
        """
        if level == MISSING:
            return 0.0
        m, u = self.m[level], self.u[level]
        side = 1.0  # the share of u that falls on this pair's side (u's adjustments below keep it)
        if contact is not None and self.m_contact is not None and self.u_contact is not None and u > 0:
            m = self.m_contact[level] if contact else m - self.m_contact[level]
            side = (self.u_contact[level] if contact else u - self.u_contact[level]) / u
        if level == 0 and agreed is not None:
            if self.tf or self.tf_floor:
                u = max(self.tf.get(agreed, self.tf_floor), self.tf_floor)
            people = None if names_agree else self.shared.get(agreed)
            if people:
                # The chance that another holder of the value is someone else: 1/2 for a family mailbox, 9/10 for
                # a switchboard of ten.
                u = max(u, (people - 1) / people)
        return math.log2(max(m, FLOOR) / max(u * side, FLOOR))

    def contact_log2(self, contact: bool) -> float:
        """Return the part of a joint weight (``bayes_factor_log2`` with ``contact``) that whether both records
        hold a contact gives on its own: log2(P(that | match) / P(that | non-match)); 0 without ``m_contact``."""
        if self.m_contact is None or self.u_contact is None:
            return 0.0
        m_both, u_both = sum(self.m_contact), sum(self.u_contact)
        m_side, u_side = (m_both, u_both) if contact else (sum(self.m) - m_both, sum(self.u) - u_both)
        return math.log2(max(m_side, FLOOR) / max(u_side, FLOOR))


@dataclass
class Model:
    """A learned model for one entity: its fields' weights and the prior probability of a match."""

    fields: list[FieldWeights]
    prior: float
    iterations: int = 0

    def field(self, name: str) -> FieldWeights:
        for weights in self.fields:
            if weights.name == name:
                return weights
        raise KeyError(name)

    @property
    def prior_log2(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    def weights_table(self) -> np.ndarray:
        """Return log2(m/u) as a matrix fields x max levels (NaN past a field's last level)."""
        width = max(len(weights.m) for weights in self.fields)
        table = np.full((len(self.fields), width), np.nan)
        for row, weights in enumerate(self.fields):
            for level in range(len(weights.m)):
                table[row, level] = weights.bayes_factor_log2(level)
        return table


def probability(weight_log2: float | np.ndarray):
    """Return the match probability of a match weight (log2 odds)."""
    return 1.0 / (1.0 + np.exp2(-np.asarray(weight_log2, dtype=float)))


def _normalised(values: Iterable[float]) -> list[float]:
    array = np.clip(np.asarray(list(values), dtype=float), FLOOR, None)
    array /= array.sum()
    return [float(value) for value in array]


# ---------------------------------------------------------------------------------------------------------------
# u


def u_from_sample(field_type: str, sampled_levels: np.ndarray, exact_share: float | None) -> list[float]:
    """Return u of a field's levels from the levels of randomly sampled pairs, the exact level from frequencies.

    ``exact_share`` is the probability that two random records holding the field share a value exactly (from
    the value counts); None: take it from the sample too.
    """
    size = len(LEVELS[field_type])
    observed = sampled_levels[sampled_levels != MISSING]
    counts = np.bincount(observed.astype(np.int64), minlength=size).astype(float)[:size]
    # A tenth of a pair per level: a level never seen in the sample is rare among strangers, not impossible.
    counts += 0.1
    if exact_share is None:
        return _normalised(counts)
    rest = counts[1:] / counts[1:].sum() * (1 - exact_share)
    return _normalised([max(exact_share, FLOOR), *rest])


def _value_counts(keys_per_record: Sequence[set[str] | None],
                  records_per_entry: Sequence[int] | None) -> tuple[dict[str, int], int]:
    """Return how many records hold each value, and how many records hold any (each entry weighed by
    ``records_per_entry``, one record each by default)."""
    counts: dict[str, int] = {}
    holders = 0
    weights = records_per_entry if records_per_entry is not None else [1] * len(keys_per_record)
    for keys, weight in zip(keys_per_record, weights):
        if not keys or not weight:
            continue
        holders += weight
        for key in keys:
            counts[key] = counts.get(key, 0) + weight
    return counts, holders


def exact_share_and_tf(keys_per_record: Sequence[set[str] | None],
                       records_per_entry: Sequence[int] | None = None) -> tuple[float, dict[str, float], int]:
    """Return P(two random holders share a value), each value's term frequency, and the holder count.

    A value's term frequency is the chance that another holder of the field holds it too, (count - 1) /
    (holders - 1); only values held by two or more records are listed. ``records_per_entry``: each entry of
    ``keys_per_record`` stands for this many records (one entry per distinct value); default one each.
    """
    return _share_and_tf(*_value_counts(keys_per_record, records_per_entry))


def _share_and_tf(counts: dict[str, int], holders: int) -> tuple[float, dict[str, float], int]:
    if holders < 2:
        return 0.0, {}, holders
    pairs = holders * (holders - 1)
    share = sum(count * (count - 1) for count in counts.values()) / pairs
    tf = {key: (count - 1) / (holders - 1) for key, count in counts.items() if count > 1}
    return max(share, 1 / pairs), tf, holders


def seen_once_share(keys_per_record: Sequence[set[str] | None],
                    records_per_entry: Sequence[int] | None = None) -> float:
    """Return the Good-Turing estimate of the chance that another record holds a value seen on ONE other record.

    Counted raw that is 1 / (holders - 1). But a value seen once among the others is, on average, rarer than
    that: most values seen once are seen once by luck of the sample (Good, 1953). Good-Turing's adjusted count of
    a value seen once is 2 x N2 / N1 (N1, N2: how many values are held by one record, by two), so the chance is
    min(1, 2 x N2 / N1) / (holders - 1). A full name held by two records is then weighed as rare as names held by
    one record are in this base, not as common as the pair itself makes it. ``records_per_entry``: as in
    ``exact_share_and_tf``.
    """
    return _seen_once(*_value_counts(keys_per_record, records_per_entry))


def _seen_once(counts: dict[str, int], holders: int) -> float:
    if holders < 2:
        return 0.0
    once = sum(1 for count in counts.values() if count == 1)
    twice = sum(1 for count in counts.values() if count == 2)
    adjusted = min(1.0, 2 * twice / once) if once else 1.0
    return adjusted / (holders - 1)


def value_frequencies(keys_per_record: Sequence[set[str] | None], records_per_entry: Sequence[int] | None = None
                      ) -> tuple[float, dict[str, float], int, float]:
    """Return ``exact_share_and_tf``'s share, term frequencies and holders, and ``seen_once_share``, the values
    counted once."""
    counts, holders = _value_counts(keys_per_record, records_per_entry)
    return (*_share_and_tf(counts, holders), _seen_once(counts, holders))


# ---------------------------------------------------------------------------------------------------------------
# m and the prior by EM


def initial_m(field_type: str) -> list[float]:
    """Return a starting m: most matches agree exactly, fewer at each weaker level, few disagree."""
    size = len(LEVELS[field_type])
    weights = [0.9 * 0.5 ** level for level in range(size - 1)] + [0.05]
    return _normalised(weights)


def distinct_patterns(gammas: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct rows of the levels (pairs x fields) in np.unique's order, and how often each occurs.

    Each row is packed into one integer (four bits a level, MISSING as 0) and the integers are sorted, which is
    np.unique(axis=0) without its row-by-row comparison (a few hundred patterns among millions of pairs).
    ``weights``: each row stands for this many pairs (a sampled pair for its stratum); the counts are their sums.
    """
    width = gammas.shape[1]
    if width > 15 or not len(gammas) or gammas.max() >= 15:
        if weights is None:
            return np.unique(gammas, axis=0, return_counts=True)
        patterns, inverse = np.unique(gammas, axis=0, return_inverse=True)
        return patterns, np.bincount(inverse.reshape(-1), weights=weights, minlength=len(patterns))
    packed = np.zeros(len(gammas), dtype=np.int64)
    for column in range(width):
        packed = (packed << 4) | (gammas[:, column].astype(np.int64) + 1)
    if weights is None:
        unique, counts = np.unique(packed, return_counts=True)
    else:
        unique, inverse = np.unique(packed, return_inverse=True)
        counts = np.bincount(inverse, weights=weights, minlength=len(unique))
    patterns = np.empty((len(unique), width), dtype=gammas.dtype)
    for column in range(width - 1, -1, -1):
        patterns[:, column] = (unique & 15) - 1
        unique = unique >> 4
    return patterns, counts


def expectation_maximisation(
    gammas: np.ndarray,
    fields: list[FieldWeights],
    *,
    prior: float = 0.05,
    max_iterations: int = EM_MAX_ITERATIONS,
    fixed_m: Sequence[bool] | None = None,
    update_u: bool = False,
    sample_weights: np.ndarray | None = None,
) -> tuple[float, int]:
    """Estimate every field's m and the prior from candidate pairs' levels (pairs x fields), u held fixed.

    Updates ``fields`` in place; returns (prior, iterations). ``fixed_m`` marks fields whose m is kept (Splink
    fixes the fields of the blocking rule; here blocking uses several keys at once, so none by default).
    ``sample_weights``: how many candidate pairs each row stands for (a stratified sample's); one each by default.
    """
    if gammas.size == 0:
        return prior, 0
    patterns, counts = distinct_patterns(gammas, sample_weights)
    counts = counts.astype(float)
    present = patterns != MISSING
    safe = np.where(present, patterns, 0)
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        log_u = np.zeros(patterns.shape)
        for column, weights in enumerate(fields):
            log_u[:, column] = np.where(present[:, column], np.log(np.asarray(weights.u))[safe[:, column]], 0.0)
        log_u_sum = log_u.sum(axis=1)
        log_m = np.zeros(patterns.shape)
        for column, weights in enumerate(fields):
            log_m[:, column] = np.where(present[:, column], np.log(np.asarray(weights.m))[safe[:, column]], 0.0)
        match_log = math.log(prior) + log_m.sum(axis=1)
        non_log = math.log(1 - prior) + log_u_sum
        top = np.maximum(match_log, non_log)
        p_match = np.exp(match_log - top) / (np.exp(match_log - top) + np.exp(non_log - top))
        weighted = p_match * counts
        new_prior = float(np.clip(weighted.sum() / counts.sum(), FLOOR, 1 - FLOOR))
        change = abs(new_prior - prior)
        for column, weights in enumerate(fields):
            if fixed_m is not None and fixed_m[column]:
                continue
            size = len(weights.m)
            mask = present[:, column]
            totals = np.bincount(safe[mask, column], weights=weighted[mask], minlength=size)[:size]
            if totals.sum() <= 0:
                continue
            new_m = _normalised(totals)
            change = max(change, max(abs(a - b) for a, b in zip(new_m, weights.m)))
            weights.m = new_m
            if update_u:
                rest = np.bincount(safe[mask, column], weights=(1 - p_match[mask]) * counts[mask], minlength=size)
                if rest.sum() > 0:
                    weights.u = _normalised(rest[:size])
        prior = new_prior
        if change < EM_TOLERANCE:
            break
    return prior, iteration


# A field's m is taken from vouched pairs when at least this many exist; else EM learns it.
SEED_MIN_PAIRS = 30
MAX_PRIOR = 0.5
# A field two random records agree on more often than this is weak evidence (country, state, gender).
WEAK_U_EXACT = 0.1


def learn_m_and_prior(gammas: np.ndarray, fields: list[FieldWeights], *, prior: float = 0.05,
                      rare: Sequence[np.ndarray | None] | None = None,
                      sample_weights: np.ndarray | None = None) -> tuple[float, int]:
    """Estimate m (in place) and the prior from the candidate pairs' levels, without labels.

    One EM over all candidate pairs with u fixed from random pairs collapses: every candidate agrees on
    something (that is how it became a candidate), far more often than random pairs do, so "match" absorbs
    them all. Splink's answer is EM sessions on one blocking rule at a time; on a CRM base those sessions still
    latch onto colleagues (one switchboard, one company) and families (one mailbox). So m is estimated
    leave-one-out from pairs the other fields vouch for: a field's m is the distribution of its levels over the
    candidate pairs that agree exactly, on a rare value (held by a few records), on at least two OTHER selective
    fields. Under the model's own assumption (fields independent given match status) that is an unbiased
    sample of matches for this field. Weak fields (a country: random records often agree) are then learned by
    EM with the others fixed, together with the prior; a selective field with too few vouched pairs keeps the
    starting m of its type (``initial_m``).

    ``rare[field]`` marks the pairs whose exact agreement is on a rare value (None: every exact agreement).
    ``sample_weights``: how many candidate pairs each row stands for (a stratified sample, ``sampling.py``): the
    vouched counts and the EM weigh each row by it, so a sample gives the whole set's estimates.
    Returns (prior, EM iterations).
    """
    weight = np.ones(len(gammas)) if sample_weights is None else np.asarray(sample_weights, dtype=float)
    weak = np.array([weights.u[0] > WEAK_U_EXACT for weights in fields])
    agree = np.zeros(gammas.shape, dtype=bool)
    for column in range(len(fields)):
        if weak[column]:
            continue
        agree[:, column] = gammas[:, column] == 0
        if rare is not None and rare[column] is not None:
            agree[:, column] &= rare[column]
    # The fields of a person's name (first, last, full name) vouch as one: namesakes share all of them.
    groups: dict[str, list[int]] = {}
    for column, weights in enumerate(fields):
        groups.setdefault(weights.type if weights.type == PERSON_NAME else weights.name, []).append(column)
    group_of = {column: key for key, columns in groups.items() for column in columns}
    group_votes = {key: agree[:, columns].any(axis=1) for key, columns in groups.items()}
    votes = np.sum(list(group_votes.values()), axis=0)
    learned = np.zeros(len(fields), dtype=bool)
    names = groups.get(PERSON_NAME)
    name_agrees = None
    if names:
        # Records of one person carry one name, give or take a typo or a variant: a vouched pair of a base with
        # names must agree on the name too (else colleagues at one switchboard and company vouch for each other).
        name_agrees = ((gammas[:, names] >= 0) & (gammas[:, names] <= 2)).any(axis=1)
    for column, weights in enumerate(fields):
        others = votes - group_votes[group_of[column]]
        rows = (others >= 2) & (gammas[:, column] != MISSING)
        if name_agrees is not None and group_of[column] != PERSON_NAME:
            rows &= name_agrees
        if weight[rows].sum() < SEED_MIN_PAIRS:
            continue
        size = len(weights.m)
        counts = np.bincount(gammas[rows, column].astype(np.int64), weights=weight[rows], minlength=size)[:size]
        weights.m = _normalised((counts + 0.1) / (counts.sum() + 0.1 * size))
        learned[column] = True
    # Weak fields are learned by EM with the rest fixed; a selective field without enough vouched pairs keeps
    # its starting m (EM over everything is what collapses).
    prior, iterations = expectation_maximisation(gammas, fields, prior=prior, fixed_m=list(~weak | learned),
                                                 sample_weights=sample_weights)
    # A base where most candidate pairs are matches is one EM misread (too few pairs to tell): cap it.
    return min(prior, MAX_PRIOR), iterations


# The prior over all pairs is found to this relative precision (bisection on its logarithm).
PRIOR_PRECISION = 1e-4
PRIOR_LOWEST = 1e-15


def prior_over_all_pairs(bayes_factors_log2: np.ndarray, all_pairs: float, *, start: float,
                         sample_weights: np.ndarray | None = None) -> float:
    """Return lambda, the probability that two random records match, consistent with the candidates' evidence.

    Each pair is a match with probability lambda x BF / (lambda x BF + 1 - lambda) (BF its Bayes factor, every
    field's m/u with term frequencies, what scoring uses); the pairs blocking left out are non-matches (their
    fields disagree). So lambda must equal the expected number of matches among the candidates over all pairs:

        lambda = sum over candidates of P(match | BF, lambda) / all pairs.

    EM over the candidates alone learns the share of matches among them with u taken from RANDOM pairs, and
    the candidates that merely look alike (colleagues, namesakes, relatives: a few bits of evidence each) come
    out as part-matches under that far higher prior: scaled to all pairs it was 4.5 times the true share at
    100,000 CRM records and 12-15 times at 1,000,000. Under the consistent lambda such a pair counts for
    almost nothing (its few bits against the ~21 bits lambda starts from), and the matches, whose evidence
    clears that by far, for one each: the count of matches the candidates hold.

    The right-hand side grows with lambda more slowly than lambda itself once lambda exceeds it (each term is
    at most 1 and concave in lambda), so the largest solution at or below ``start`` (the EM's scaled prior,
    an upper bound) is found by bisection on log lambda. When the candidates hold more matches than ``start``
    says (the EM's prior was capped at MAX_PRIOR: most candidates are matches), ``start`` is kept: at most a
    factor 1 / MAX_PRIOR below the solution, on the side of fewer duplicates. ``sample_weights``: the candidates
    each row stands for (sampling.stratified_sample).
    """
    if all_pairs <= 0 or not len(bayes_factors_log2):
        return start
    weights = np.ones(len(bayes_factors_log2)) if sample_weights is None else np.asarray(sample_weights, float)
    factors = np.asarray(bayes_factors_log2, dtype=float)

    def expected(prior: float) -> float:
        return float(weights @ probability(factors + math.log2(prior / (1 - prior)))) / all_pairs

    low, high = PRIOR_LOWEST, min(max(start, PRIOR_LOWEST), MAX_PRIOR)
    if expected(high) >= high:
        return high
    if expected(low) <= low:  # no candidate's evidence holds a match (lambda -> 0): the lowest prior
        return low
    while high / low > 1 + PRIOR_PRECISION:
        middle = math.sqrt(low * high)
        if expected(middle) > middle:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)



# EM rounds over the person names' m under the prior over all pairs (``refine_names``): the name's m moves by
# under 0.001 after the second round on the CRM set at 100,000 and 1,000,000 records.
NAME_EM_ITERATIONS = 3
# A round re-estimates the names' m from at least one pair's worth of posterior, else keeps it: from none, the
# tenth of a pair per level made every level equally likely for a match (a base too small to tell, 2026-12-06).
NAME_EM_MIN_PAIRS = 1.0


def refine_names(model: Model, gammas: np.ndarray, agreed: list, all_pairs: float, *, start: float,
                 sample_weights: np.ndarray | None = None, iterations: int = NAME_EM_ITERATIONS,
                 contact_share: float | None = None) -> None:
    """Re-estimate the person names' m by EM over the candidate pairs under the prior over all pairs, and the
    prior with it (in place).

    The vouched pairs ``learn_m_and_prior`` takes a field's m from agree on two other fields; for the name that
    picks the records typed with care, and a name typed with a typo or as a nickname comes more often on a
    sparse record (a form filled in quickly: a name and a company): the CRM set's vouched pairs gave a name typo
    0.047 and a variant 0.005 of the matches at 1,000,000 records, where its truth, looked at afterwards, says
    0.146 and 0.028 (under a third of the weight: 1.6 and 2.6 bits short). Here every candidate counts by its
    probability of being a match, its whole evidence weighed against the probability that two random records
    match (``prior_over_all_pairs``), not against the share of matches among the candidates, which is what made
    EM over the candidates take colleagues and namesakes for matches. Only the names are re-estimated: a
    contact's "different" drifts up round after round (namesakes at one company, likely on their name and
    company, count towards it), while the names' m settles in two rounds (on both sizes of the CRM set, to
    0.83 / 0.03 / 0.14 exact / variant / typo at 1,000,000, the truth's 0.82 / 0.03 / 0.15).

    ``contact_share``: the share of random record pairs (with names) whose two records both hold a contact.
    Given, each name level's m is counted apart for the pairs whose records both hold a contact and for the
    rest (``FieldWeights.m_contact``), and u split by that share (random pairs: a name's level and the contacts'
    being there are independent). A name typed with a typo or as a nickname comes on a quick entry, and two
    namesakes typed in full at one company, each with an own phone, were weighed as if their name level came
    from such an entry: on the CRM set at 1,000,000 records every match with a name typo or variant had at most
    one record with a contact, and 167 pairs with a typo and two phones were no match, yet scored 0.52 on
    average. Learned from the base, so where names are typed alike on full and sparse records both parts of m
    keep u's proportions and the weights are as before.
    """
    names = [column for column, weights in enumerate(model.fields) if weights.type == PERSON_NAME]
    weight = np.ones(len(gammas)) if sample_weights is None else np.asarray(sample_weights, dtype=float)
    contact = contact_compared(model, gammas)
    split = contact_share is not None and 0 < contact_share < 1 and contact.any() and not contact.all()
    for _iteration in range(iterations if names else 0):
        evidence = pair_weights(model, gammas, agreed) - model.prior_log2
        model.prior = prior_over_all_pairs(evidence, all_pairs, start=start, sample_weights=weight)
        posterior = probability(evidence + model.prior_log2) * weight
        for column in names:
            weights = model.fields[column]
            size = len(weights.m)
            present = gammas[:, column] != MISSING
            counts = np.stack([np.bincount(gammas[rows, column].astype(np.int64), weights=posterior[rows],
                                           minlength=size)[:size] for rows in (present & ~contact, present & contact)])
            if counts.sum() < NAME_EM_MIN_PAIRS:  # no pair holds a match under this prior: m stays as it is
                continue
            # A tenth of a pair per level (half of it on each side when split) keeps a level never seen possible.
            joint = (counts + 0.05) / (counts.sum() + 0.1 * size)
            weights.m = _normalised(joint.sum(axis=0))
            if split and (counts.sum(axis=1) > 0).all():
                weights.m_contact = [float(value) for value in joint[1] / joint.sum()]
                weights.u_contact = [value * contact_share for value in weights.u]
    evidence = pair_weights(model, gammas, agreed) - model.prior_log2
    model.prior = prior_over_all_pairs(evidence, all_pairs, start=start, sample_weights=weight)


# ---------------------------------------------------------------------------------------------------------------
# Managers' decisions


def fold_labels(model: Model, gammas: np.ndarray, is_match: Sequence[bool], *,
                strength: float = LABEL_PRIOR_STRENGTH) -> Model:
    """Return the model with labelled pairs folded in: merges into m, "not a duplicate" pairs into u.

    Each field's m (or u) becomes (strength x learned + counts of the labelled pairs' levels) / (strength +
    labelled pairs with the field), a Dirichlet update: a few decisions nudge the weights, many decide them.
    """
    labels = np.asarray(is_match, dtype=bool)
    gammas = np.asarray(gammas).reshape(len(labels), len(model.fields)) if len(labels) else gammas
    for column, weights in enumerate(model.fields):
        size = len(weights.m)
        for which, rows in (("m", labels), ("u", ~labels)):
            if not rows.any():
                continue
            levels = gammas[rows, column]
            levels = levels[levels != MISSING].astype(np.int64)
            if not len(levels):
                continue
            counts = np.bincount(levels, minlength=size)[:size].astype(float)
            learned = np.asarray(getattr(weights, which))
            folded = np.asarray(_normalised((strength * learned + counts) / (strength + len(levels))))
            setattr(weights, which, [float(value) for value in folded])
            joint = getattr(weights, f"{which}_contact")
            if joint is not None:  # each level keeps its learned split between pairs with contacts and without
                setattr(weights, f"{which}_contact", [float(value) for value in
                                                      np.asarray(joint) * folded / np.clip(learned, FLOOR, None)])
    return model


# ---------------------------------------------------------------------------------------------------------------
# Scoring


# Person-name levels at or below this index (exact, variant, typo) say "these records carry one name".
NAMES_AGREE_LEVEL = 2


def names_agree(model: Model, gammas: np.ndarray) -> np.ndarray:
    """Return, per pair, whether any person-name field agrees (exactly, as variants or with a typo)."""
    columns = [column for column, weights in enumerate(model.fields) if weights.type == PERSON_NAME]
    if not columns or not len(gammas):
        return np.zeros(len(gammas), dtype=bool)
    levels = gammas[:, columns]
    return ((levels >= 0) & (levels <= NAMES_AGREE_LEVEL)).any(axis=1)


def contact_compared(model: Model, gammas: np.ndarray) -> np.ndarray:
    """Return, per pair, whether both records hold a contact (some phone or email field compared, MISSING not)."""
    columns = [column for column, weights in enumerate(model.fields) if weights.type in CONTACT_TYPES]
    if not columns or not len(gammas):
        return np.zeros(len(gammas), dtype=bool)
    return (gammas[:, columns] != MISSING).any(axis=1)


def pair_weights(model: Model, gammas: np.ndarray, agreed: list[list[str | None]] | None = None) -> np.ndarray:
    """Return each pair's match weight (log2 odds) from its levels (pairs x fields).

    ``agreed[field][pair]`` is the value the pair shares exactly (term-frequency adjustment), or None.
    """
    total = np.full(len(gammas), model.prior_log2)
    agree = names_agree(model, gammas) if agreed is not None else None
    contact = None
    for column, weights in enumerate(model.fields):
        table = np.array([weights.bayes_factor_log2(level) for level in range(len(weights.m))] + [0.0])
        levels = gammas[:, column]
        index = np.where(levels == MISSING, len(weights.m), levels)
        if weights.m_contact is not None:  # weighed with whether both records hold a contact
            if contact is None:
                contact = contact_compared(model, gammas)
            tables = np.array([[weights.bayes_factor_log2(level, contact=side) for level in range(len(weights.m))]
                               + [0.0] for side in (False, True)])
            total += tables[contact.astype(np.int64), index]
        else:
            total += table[index]
        # (The term-frequency adjustments below are log2(u / the value's frequency), the same on either side.)
        if agreed is not None and (weights.tf or weights.tf_floor or weights.shared):
            exact_weight = table[0]
            codes = getattr(agreed[column], "codes", None)
            if codes is not None:  # levels.AgreedColumn: each (value, names agree) adjusted once
                rows = np.flatnonzero(codes >= 0)
                if len(rows):
                    values = agreed[column].values
                    unique, inverse = distinct_inverse(codes[rows].astype(np.int64) * 2 + agree[rows],
                                                       2 * len(values) + 2)
                    adjusted = np.array([weights.bayes_factor_log2(0, values[key // 2], names_agree=bool(key % 2))
                                         - exact_weight for key in unique.tolist()])
                    total[rows] += adjusted[inverse]
                continue
            cache: dict[tuple[str, bool], float] = {}
            for row, value in enumerate(agreed[column]):
                if value is not None:
                    key = (value, bool(agree[row]))
                    adjusted = cache.get(key)
                    if adjusted is None:
                        adjusted = cache[key] = weights.bayes_factor_log2(0, value, names_agree=key[1]) - exact_weight
                    total[row] += adjusted
    return total
