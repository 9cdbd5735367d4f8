"""Comparison levels and exact agreements of many pairs at once: each DISTINCT pair of prepared values is graded
once, to the level the per-pair function (comparisons.compare) gives it, and the grade is spread back over the
pairs by numpy.

A column of prepared values is coded once: every distinct prepared object gets an integer (read_records shares
one object among records typed alike, so a country, a big company or a common name is one code), and a missing
value is -1. A block of pairs then becomes two arrays of codes; the pairs whose two codes are equal agree
exactly without grading, the rest are reduced to their distinct (left code, right code) pairs with np.unique,
graded (in bulk by scoring/graders.py for names, phones, emails and dates; one by one otherwise), and broadcast
back. At 100,000 CRM records the 707,174 candidate pairs hold 2.9 million
field comparisons but far fewer distinct value pairs on every field but the name.

Exact agreements are kept compact too (``AgreedColumn``: a code per pair into the list of agreed values), not
a Python list per field as long as the pairs: at a million records that list alone was gigabytes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import graders
from dedup.engine.scoring.graders import distinct  # noqa: F401 - its home was here; callers import it from here


@dataclass
class CodedColumn:
    """One field's prepared values as codes: ``codes[row]`` indexes ``values`` (-1: missing)."""

    codes: np.ndarray
    values: list


def code_column(column: Sequence[tuple | None]) -> CodedColumn:
    """Return the column's values coded by identity (equal values prepared apart get two codes: still correct,
    each pair of them is only graded once more)."""
    index: dict[int, int] = {}
    values: list = []
    codes = []
    append = codes.append
    for value in column:
        if not value:
            append(-1)
            continue
        key = id(value)
        code = index.get(key)
        if code is None:
            code = index[key] = len(values)
            values.append(value)
        append(code)
    return CodedColumn(np.asarray(codes, dtype=np.int32 if len(values) < 2**31 else np.int64), values)


def _distinct_pairs(left: np.ndarray, right: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the distinct (left, right) code pairs and, per input pair, the index of its distinct pair."""
    size = max(size, 1)
    keys = left.astype(np.int64) * size + right
    unique, inverse = graders.distinct_inverse(keys, size * size)
    return unique // size, unique % size, inverse


def column_levels(field_type: str, coded: CodedColumn, lefts: np.ndarray, rights: np.ndarray, *,
                  cache: dict | None = None) -> np.ndarray:
    """Return one field's level (int8) for each pair of rows, MISSING where a side has no value (``cache``: kept
    by the caller between calls on the same column, graders.grade's)."""
    left, right = coded.codes[lefts], coded.codes[rights]
    levels = np.full(len(left), c.MISSING, dtype=np.int8)
    both = (left >= 0) & (right >= 0)
    same = both & (left == right)
    levels[same] = 0
    rest = np.flatnonzero(both & ~same)
    if not len(rest):
        return levels
    codes_a, codes_b, inverse = _distinct_pairs(left[rest], right[rest], len(coded.values))
    levels[rest] = graders.grade(field_type, coded.values, codes_a, codes_b, cache=cache)[inverse]
    return levels


class AgreedColumn:
    """Per pair, the value it shares exactly on one field (None where the level is not exact), kept as codes.

    Indexing gives the value (``agreed[row]``), as the list it replaces did; ``codes`` and ``values`` are the
    compact form the scoring reads in bulk.
    """

    __slots__ = ("codes", "values")

    def __init__(self, codes: np.ndarray, values: list[str]):
        self.codes = codes
        self.values = values

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, row: int) -> str | None:
        code = int(self.codes[row])
        return None if code < 0 else self.values[code]

    def __iter__(self):
        values = self.values
        return (None if code < 0 else values[code] for code in self.codes.tolist())


def column_agreed(field_type: str, coded: CodedColumn, lefts: np.ndarray, rights: np.ndarray,
                  levels: np.ndarray) -> AgreedColumn:
    """Return the exact value each pair shares on the field (comparisons.exact_agreement), coded."""
    codes = np.full(len(levels), -1, dtype=np.int32)
    rows = np.flatnonzero(levels == 0)
    values: list[str] = []
    if not len(rows):
        return AgreedColumn(codes, values)
    left, right = coded.codes[lefts[rows]], coded.codes[rights[rows]]
    index: dict[str, int] = {}
    prepared = coded.values

    def found(codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        result = np.empty(len(codes_a), dtype=np.int32)
        for position, (a, b) in enumerate(zip(codes_a.tolist(), codes_b.tolist())):
            value = c.exact_agreement(field_type, prepared[a], prepared[b])
            if value is None:
                result[position] = -1
                continue
            code = index.get(value)
            if code is None:
                code = index[value] = len(values)
                values.append(value)
            result[position] = code
        return result

    # Most exact pairs hold one value (one code) on both sides: those are looked up per value, with no sort.
    same = left == right
    alike = rows[same]
    if len(alike):
        unique, inverse = graders.distinct_inverse(left[same], len(prepared))
        codes[alike] = found(unique, unique)[inverse]
    apart = np.flatnonzero(~same)
    if len(apart):
        codes_a, codes_b, inverse = _distinct_pairs(left[apart], right[apart], len(prepared))
        codes[rows[apart]] = found(codes_a, codes_b)[inverse]
    return AgreedColumn(codes, values)
