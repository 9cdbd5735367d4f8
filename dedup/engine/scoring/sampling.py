"""A bounded, stratified sample of the candidate pairs for learning m and the prior, with each pair's weight.

Learning needs the comparison levels of the candidate pairs, and comparing is the costly part of a scan (at
1,000,000 customers 6.5 million pairs, about 80 CPU seconds). Splink estimates m by EM over the pairs of one
blocking rule at a time; here the estimate is the same as over every pair when each sampled pair counts for
the pairs it stands for (a Horvitz–Thompson weight), and comparing a few hundred thousand pairs is enough.

A uniform sample would thin out what is rare among the candidates and matters most to the estimate: the pairs
that agree exactly on several fields at once (the vouched matches of ``model.learn_m_and_prior``) and the
odd combinations of missing fields. So the pairs are stratified by a pattern that costs no grading: per field,
missing on a side / the same prepared value (equal codes) / another value. Every stratum keeps about the same
number of pairs at most, the largest number that fits the budget ("water-filling"): small strata are kept whole
(their weight is 1), only the big ones (mostly pairs that merely share a company or a name token) are thinned,
each of their pairs kept by a coin of the stratum's chance (no sort of millions of pairs).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dedup.engine.scoring.levels import CodedColumn

# Candidate pairs compared for learning at most: at 100,000 CRM records (707,174 candidate pairs) the learned
# weights move by at most a few hundredths of a bit against every pair, and F1 is unchanged (bench/README.md).
EM_SAMPLE_PAIRS = 400_000


def strata(coded: Sequence[CodedColumn], pairs: np.ndarray) -> np.ndarray:
    """Return each pair's stratum: per field 0 missing on a side, 1 the same prepared value, 2 another, as base-3
    digits of one integer."""
    stratum = np.zeros(len(pairs), dtype=np.int64)
    for column in coded:
        left, right = column.codes[pairs[:, 0]], column.codes[pairs[:, 1]]
        state = np.where((left < 0) | (right < 0), 0, np.where(left == right, 1, 2))
        stratum = stratum * 3 + state
    return stratum


def stratum_cap(sizes: np.ndarray, budget: int) -> int:
    """Return the largest per-stratum cap whose total (each stratum keeps min(size, cap)) fits the budget."""
    low, high = 1, int(sizes.max()) if len(sizes) else 1
    while low < high:
        middle = (low + high + 1) // 2
        if np.minimum(sizes, middle).sum() <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def stratified_sample(coded: Sequence[CodedColumn], pairs: np.ndarray, budget: int = EM_SAMPLE_PAIRS, *,
                      seed: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """Return the rows of ``pairs`` to learn from (in their order) and each one's weight, the pairs of its stratum
    it stands for; all rows and no weights when the pairs fit the budget.

    Each pair of a stratum is kept with the same chance, cap / size (1 for a stratum within the cap), so the
    sample is about ``budget`` pairs and needs no sort of the pairs."""
    if len(pairs) <= budget:
        return np.arange(len(pairs)), None
    stratum = strata(coded, pairs)
    if 3 ** len(coded) <= 4 * len(pairs):  # the strata as bincount's slots, else only the ones that occur
        sizes = np.bincount(stratum)
    else:
        _kinds, stratum, sizes = np.unique(stratum, return_inverse=True, return_counts=True)
    cap = stratum_cap(sizes[sizes > 0], budget)
    chance = np.minimum(1.0, cap / np.maximum(sizes, 1))
    rows = np.flatnonzero(np.random.default_rng(seed).random(len(pairs)) < chance[stratum])
    return rows, 1.0 / chance[stratum[rows]]
