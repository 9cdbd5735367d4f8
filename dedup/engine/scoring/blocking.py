"""Candidate pairs from several blocking keys at once, with bounded blocks that are refined, never dropped blindly.

Every record gets a few tokens per field (a surname's variant group and its Metaphone code, an E.164 phone and
its national number, a folded email, a date with day and month unordered, a company name
without legal form ...). Two records are a candidate pair when they share a token whose block holds at most
``max_block`` records. A token held by more records (a common first name, an office switchboard, a big
company) stops being a key on its own, but its holders are re-blocked on that token *plus* each of their other
oversized tokens ("Ivan" + "Smith", a big company + its switchboard); a pair sharing it and a small token
already meets in the small token's block. So pairs that also agree on another field still meet, while the
10,000 Ivans are never compared with each other. A combined block still larger than ``max_block`` is dropped
(two values shared by that many records tell nobody apart).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from dedup.engine.scoring import comparisons as c

# Measured on Febrl 3 (5,000 records): 24 keeps every true pair among 80k candidates, 60 doubles the pairs.
DEFAULT_MAX_BLOCK = 24
MAX_TOKENS_PER_RECORD = 24


def field_tokens(field_type: str, prepared: tuple | None) -> set[str]:
    """Return a prepared field's blocking tokens (without the field prefix)."""
    if not prepared:
        return set()
    tokens: set[str] = set()
    for item in prepared:
        if field_type == c.PERSON_NAME:
            for word, groups in zip(item.words, item.groups):
                if len(word) < 2:
                    continue
                tokens.add("g%d" % min(groups) if groups else "w" + word)
                tokens.add("p" + c.phonetic_key(word))
        elif field_type == c.COMPANY_NAME:
            tokens.add("k" + item.key)
            first = item.key.split(" ", 1)[0]
            if len(first) >= 3:
                tokens.add("f" + first + "|" + item.digits)
        elif field_type == c.DATE:
            year, month, day = item
            tokens.add("%04d|%s" % (year, "|".join(map(str, sorted((month, day))))))
        elif field_type == c.PHONE:
            tokens.add("e" + item.e164)
            tokens.add("n" + item.national)
        elif field_type == c.EMAIL:
            tokens.add("e" + item.folded)
        elif field_type == c.IDENTIFIER:
            tokens.add("v" + item)
            if len(item) >= 6:  # one typo leaves one half intact
                half = len(item) // 2
                tokens.add("a" + item[:half])
                tokens.add("b" + item[half:])
        else:  # text, number, address: the value itself
            tokens.add("v" + str(item))
    return tokens


def record_tokens(columns: Sequence[Sequence[tuple | None]], types: Sequence[str], row: int) -> list[str]:
    tokens: list[str] = []
    for position, (column, field_type) in enumerate(zip(columns, types)):
        tokens.extend(f"{position}:{token}" for token in sorted(field_tokens(field_type, column[row])))
    return tokens[:MAX_TOKENS_PER_RECORD]


def candidate_pairs(columns: Sequence[Sequence[tuple | None]], types: Sequence[str], *,
                    max_block: int = DEFAULT_MAX_BLOCK) -> np.ndarray:
    """Return the candidate pairs (an array of [left, right] row numbers, left < right, no repeats)."""
    size = len(columns[0]) if columns else 0
    tokens_of = [record_tokens(columns, types, row) for row in range(size)]
    blocks: dict[str, list[int]] = defaultdict(list)
    for row, tokens in enumerate(tokens_of):
        for token in tokens:
            blocks[token].append(row)
    # A pair sharing an oversized token and a small one already meets in the small one's block: only pairs of
    # oversized tokens need a combined block.
    refined: dict[tuple[str, str], list[int]] = defaultdict(list)
    chunks: list[np.ndarray] = []
    small_pairs: list[int] = []
    oversized = set()
    for token, rows in blocks.items():
        if len(rows) < 2:
            continue
        if len(rows) > max_block:
            oversized.add(token)
        elif len(rows) == 2:
            small_pairs.append(rows[0] * size + rows[1])
        else:
            chunks.append(_block_pairs(rows, size))
    if oversized:
        for row, tokens in enumerate(tokens_of):
            big = [token for token in tokens if token in oversized]
            for first in range(len(big)):
                for second in range(first + 1, len(big)):
                    refined[(big[first], big[second])].append(row)
    for rows in refined.values():
        if len(rows) == 2:
            small_pairs.append(rows[0] * size + rows[1])
        elif 2 < len(rows) <= max_block:
            chunks.append(_block_pairs(rows, size))
    chunks.append(np.asarray(small_pairs, dtype=np.int64))
    codes = np.unique(np.concatenate(chunks))
    if not len(codes):
        return np.empty((0, 2), dtype=np.int64)
    return np.stack([codes // size, codes % size], axis=1) if size else np.empty((0, 2), dtype=np.int64)


_PAIR_INDEX_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _block_pairs(rows: list[int], size: int) -> np.ndarray:
    """Return every pair of a block's rows, each encoded as low * size + high."""
    count = len(rows)
    cached = _PAIR_INDEX_CACHE.get(count)
    if cached is None:
        cached = np.triu_indices(count, 1)
        _PAIR_INDEX_CACHE[count] = cached
    array = np.asarray(rows, dtype=np.int64)
    left, right = array[cached[0]], array[cached[1]]
    return np.minimum(left, right) * size + np.maximum(left, right)
