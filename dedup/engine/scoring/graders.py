"""Bulk graders: the levels of many distinct pairs of values of one type at once, each equal to what
comparisons.compare gives the pair.

Most candidate pairs hold two different people's names: "John Smith" and "Mary Smith" met in the Smith block.
Graded one by one (comparisons.grade_person) every such pair pays for the word-by-word pairing-off, the
initials and the phonetic checks before it is found "different". Here the decision is taken in numpy wherever
it can be taken exactly:

- a name pair can reach "variant" or "typo" only when every word of the shorter name has a close word in the
  other (equal, a variant, one edit apart in either spelling, or long words alike by Jaro-Winkler): closeness is
  decided once per distinct pair of words, with rapidfuzz's element-wise ``cpdist`` for the edit distances and
  the similarities (the same functions the per-pair grader calls);
- "initials" needs an initial on one side, "phonetic" equal phonetic keys: both read per distinct name;
- a pair that can reach none of these is "fuzzy_mid" or "different" by the whole names' Jaro-Winkler, unless
  it is a gendered pair (Petrov / Petrova), which is "different" whatever its similarity.

Every other name pair (a few percent) is graded by the per-pair function. Phones and dates are graded in numpy
entirely: one substituted digit or two swapped neighbours in strings of equal length is a Damerau-Levenshtein
distance of 1. A field holding several values on either side goes to the per-pair function too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler
from rapidfuzz.process import cpdist

from dedup.engine import normalize
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.names import variant_groups

# Name pairs judged at once: the word pairs of a chunk (about nine per name pair) are held as int64 arrays.
NAME_CHUNK = 1_000_000


def grade(field_type: str, values: Sequence[tuple], codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Return the level (int8) of each pair of prepared values ``values[codes_a[i]]``, ``values[codes_b[i]]``."""
    result = np.empty(len(codes_a), dtype=np.int8)
    bulk = _BULK.get(field_type)
    single = np.fromiter((len(value) == 1 for value in values), dtype=bool, count=len(values))
    fast = single[codes_a] & single[codes_b] if bulk is not None else np.zeros(len(codes_a), dtype=bool)
    slow = np.flatnonzero(~fast)
    if len(slow):
        compare = c.compare
        result[slow] = np.fromiter(
            (compare(field_type, values[a], values[b]) for a, b in zip(codes_a[slow].tolist(), codes_b[slow].tolist())),
            dtype=np.int8, count=len(slow))
    rows = np.flatnonzero(fast)
    if len(rows):
        items = [value[0] if len(value) == 1 else None for value in values]
        result[rows] = bulk(items, codes_a[rows], codes_b[rows])
    return result


def _distance_at_most_one(left: list[str], right: list[str]) -> np.ndarray:
    """Return, per pair of strings, whether their Damerau-Levenshtein distance is at most 1."""
    if not left:
        return np.zeros(0, dtype=bool)
    return cpdist(left, right, scorer=DamerauLevenshtein.distance, score_cutoff=1, dtype=np.int32) <= 1


def _jaro_winkler(left: list[str], right: list[str]) -> np.ndarray:
    if not left:
        return np.zeros(0, dtype=np.float64)
    return cpdist(left, right, scorer=JaroWinkler.normalized_similarity, dtype=np.float64)


def _intern(texts: Sequence[str]) -> np.ndarray:
    """Return an integer per text, equal for equal texts."""
    index: dict[str, int] = {}
    return np.fromiter((index.setdefault(text, len(index)) for text in texts), dtype=np.int64, count=len(texts))


# ---------------------------------------------------------------------------------------------------------------
# Phones and dates


def _phone_levels(items: list, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_phone: exact, same national number, one digit apart (equal length), different."""
    present = [item for item in items if item is not None]
    e164 = np.full(len(items), -1, dtype=np.int64)
    national = np.full(len(items), -1, dtype=np.int64)
    length = np.zeros(len(items), dtype=np.int64)
    where = [position for position, item in enumerate(items) if item is not None]
    e164[where] = _intern([item.e164 for item in present])
    national[where] = _intern([item.national for item in present])
    length[where] = [len(item.national) for item in present]
    levels = np.full(len(codes_a), 4, dtype=np.int8)
    same_national = national[codes_a] == national[codes_b]
    near = np.flatnonzero(~same_national & (length[codes_a] == length[codes_b]))
    one_digit = _distance_at_most_one([items[code].national for code in codes_a[near].tolist()],
                                      [items[code].national for code in codes_b[near].tolist()])
    levels[near[one_digit]] = 2
    levels[same_national] = 1
    levels[e164[codes_a] == e164[codes_b]] = 0
    return levels


def _date_levels(items: list, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_date: exact, day and month swapped, one digit apart, different."""
    parts = np.array([item if item is not None else (0, 0, 0) for item in items], dtype=np.int64).reshape(-1, 3)
    a, b = parts[codes_a], parts[codes_b]
    exact = (a == b).all(axis=1)
    swapped = ~exact & (a[:, 0] == b[:, 0]) & (a[:, 1] == b[:, 2]) & (a[:, 2] == b[:, 1])
    levels = np.full(len(codes_a), 3, dtype=np.int8)
    rest = np.flatnonzero(~exact & ~swapped)
    texts = ["%04d%02d%02d" % item if item is not None else "" for item in items]
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    rest = rest[lengths[codes_a[rest]] == lengths[codes_b[rest]]]
    one_digit = _distance_at_most_one([texts[code] for code in codes_a[rest].tolist()],
                                      [texts[code] for code in codes_b[rest].tolist()])
    levels[rest[one_digit]] = 2
    levels[swapped] = 1
    levels[exact] = 0
    return levels


# ---------------------------------------------------------------------------------------------------------------
# Person names


class _Names:
    """The distinct names of a column read once: key, phonetic key, initials, words as integer ids."""

    def __init__(self, items: list):
        present = [item for item in items if item is not None]
        where = [position for position, item in enumerate(items) if item is not None]
        size = len(items)
        self.items = items
        self.key = np.full(size, -1, dtype=np.int64)
        self.key[where] = _intern([item.key for item in present])
        self.phonetic = np.full(size, -1, dtype=np.int64)
        self.phonetic[where] = _intern([item.phonetic for item in present])
        self.initial = np.zeros(size, dtype=bool)
        self.initial[where] = [any(map(normalize.is_initial, item.words)) for item in present]
        self.count = np.zeros(size, dtype=np.int64)
        self.count[where] = [len(item.words) for item in present]
        width = int(self.count.max()) if size else 0
        self.words = np.full((size, max(width, 1)), -1, dtype=np.int64)
        index: dict[tuple[str, str], int] = {}
        self.word_list: list[tuple[str, str]] = []
        for position, item in zip(where, present):
            for slot, word in enumerate(zip(item.words, item.plain)):
                code = index.get(word)
                if code is None:
                    code = index[word] = len(self.word_list)
                    self.word_list.append(word)
                self.words[position, slot] = code
        self.key_text = np.array([item.key if item is not None else "" for item in items], dtype=object)
        self.folded = np.array([folded for folded, _plain in self.word_list], dtype=object)
        self.plain = np.array([plain for _folded, plain in self.word_list], dtype=object)
        self.folded_id = _intern(self.folded.tolist())
        # The folded id of each word's feminine forms (Petrov -> Petrova, Ivan -> Ivana; -1: not a word here),
        # for comparisons.gendered_pair.
        ids = dict(zip(self.folded.tolist(), self.folded_id.tolist()))
        self.feminine = np.array([[ids.get(folded + ending, -1) if len(folded) >= 3 else -1 for ending in ("a", "na")]
                                  for folded in self.folded.tolist()], dtype=np.int64).reshape(-1, 2)
        self.folded_length = np.array([len(folded) for folded, _plain in self.word_list], dtype=np.int64)
        self.plain_length = np.array([len(plain) for _folded, plain in self.word_list], dtype=np.int64)
        self.grouped = np.array([bool(variant_groups(folded)) for folded, _plain in self.word_list], dtype=bool)

    def close(self, short: np.ndarray, long: np.ndarray) -> np.ndarray:
        """Return, per pair of word ids, comparisons._typo_or_variant of the two words."""
        words = self.word_list
        close = self.folded_id[short] == self.folded_id[long]
        groups = np.flatnonzero(~close & self.grouped[short] & self.grouped[long])
        close[groups] = np.fromiter(
            (bool(variant_groups(words[a][0]) & variant_groups(words[b][0]))
             for a, b in zip(short[groups].tolist(), long[groups].tolist())), dtype=bool, count=len(groups))
        for lengths, texts in ((self.folded_length, self.folded), (self.plain_length, self.plain)):
            edit = np.flatnonzero(~close & (np.minimum(lengths[short], lengths[long]) >= 4)
                                  & (np.abs(lengths[short] - lengths[long]) <= 1))
            close[edit] = _distance_at_most_one(texts[short[edit]].tolist(), texts[long[edit]].tolist())
        lengths = self.folded_length
        similar = np.flatnonzero(~close & (np.minimum(lengths[short], lengths[long]) >= 6))
        close[similar] = _jaro_winkler(self.folded[short[similar]].tolist(),
                                       self.folded[long[similar]].tolist()) >= c.HIGH
        return close

    def gendered(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Return, per pair of word ids, whether one is the other with a feminine ending (Petrov / Petrova)."""
        folded_left, folded_right = self.folded_id[left], self.folded_id[right]
        return ((self.feminine[left] == folded_right[:, None]).any(axis=1)
                | (self.feminine[right] == folded_left[:, None]).any(axis=1))

    def word_pairs(self, codes_a: np.ndarray, codes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return, per name pair, whether every word of the shorter name has a close word in the other (the
        condition of the "variant" and "typo" levels: the per-pair grader's pairing-off needs it and more), and
        whether the two names are a gendered pair (comparisons.gendered_pair)."""
        swap = self.count[codes_a] > self.count[codes_b]
        short, long = np.where(swap, codes_b, codes_a), np.where(swap, codes_a, codes_b)
        base = self.words.shape[1] + 1
        shapes = self.count[short] * base + self.count[long]
        groups = [(shape, np.flatnonzero(shapes == shape)) for shape in np.unique(shapes).tolist()]
        keys = []
        for shape, rows in groups:
            short_count, long_count = divmod(shape, base)
            left = self.words[short[rows], :short_count]
            right = self.words[long[rows], :long_count]
            keys.append((left[:, :, None] * len(self.word_list) + right[:, None, :]).ravel())
        unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        left, right = unique // len(self.word_list), unique % len(self.word_list)
        close, gendered = self.close(left, right)[inverse], self.gendered(left, right)[inverse]
        pair_off = np.zeros(len(codes_a), dtype=bool)
        any_gendered = np.zeros(len(codes_a), dtype=bool)
        start = 0
        for shape, rows in groups:
            short_count, long_count = divmod(shape, base)
            stop = start + len(rows) * short_count * long_count
            pair_off[rows] = close[start:stop].reshape(len(rows), short_count, long_count).any(axis=2).all(axis=1)
            any_gendered[rows] = gendered[start:stop].reshape(len(rows), -1).any(axis=1)
            start = stop
        return pair_off, any_gendered


def _person_levels(items: list, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons.grade_person, the pairs that can only be "fuzzy_mid" or "different" decided in numpy."""
    names = _Names(items)
    levels = np.empty(len(codes_a), dtype=np.int8)
    for start in range(0, len(codes_a), NAME_CHUNK):
        stop = start + NAME_CHUNK
        levels[start:stop] = _person_chunk(names, codes_a[start:stop], codes_b[start:stop])
    return levels


def _person_chunk(names: _Names, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    levels = np.full(len(codes_a), len(c.LEVELS[c.PERSON_NAME]) - 1, dtype=np.int8)
    exact = names.key[codes_a] == names.key[codes_b]
    levels[exact] = 0
    open_ = np.flatnonzero(~exact)
    a, b = codes_a[open_], codes_b[open_]
    pair_off, gendered = names.word_pairs(a, b)
    hard = ~gendered & (names.initial[a] | names.initial[b] | (names.phonetic[a] == names.phonetic[b]) | pair_off)
    items, grade = names.items, c.grade_person
    hard_rows = open_[hard]
    levels[hard_rows] = np.fromiter(
        (grade(items[x], items[y]) for x, y in zip(codes_a[hard_rows].tolist(), codes_b[hard_rows].tolist())),
        dtype=np.int8, count=len(hard_rows))
    # The rest are "fuzzy_mid" or "different" by the whole names' similarity; a gendered pair is "different".
    easy = open_[~hard & ~gendered]
    similar = _jaro_winkler(names.key_text[codes_a[easy]].tolist(), names.key_text[codes_b[easy]].tolist()) >= c.MID
    levels[easy[similar]] = c.LEVELS[c.PERSON_NAME].index("fuzzy_mid")
    return levels


_BULK = {c.PHONE: _phone_levels, c.DATE: _date_levels, c.PERSON_NAME: _person_levels}
