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
from dedup.engine.scoring import workers
from dedup.engine.scoring.names import known_apart, variant_groups

# Name pairs judged at once: the word pairs of a chunk (about nine per name pair) are held as int64 arrays.
NAME_CHUNK = 1_000_000
# Fewer name pairs are graded on the calling thread (a thread's start would cost more than it saves).
NAME_PARALLEL_MIN = 20_000


def grade(field_type: str, values: Sequence[tuple], codes_a: np.ndarray, codes_b: np.ndarray, *,
          cache: dict | None = None) -> np.ndarray:
    """Return the level (int8) of each pair of prepared values ``values[codes_a[i]]``, ``values[codes_b[i]]``.

    ``cache``: a dict kept with the column (levels.CodedColumn.laid_out) for what is read once per distinct
    value (a name's words, a phone's interned numbers): the next call on the same values reads it from there."""
    result = np.empty(len(codes_a), dtype=np.int8)
    bulk = _BULK.get(field_type)
    laid_out = cache.get(field_type) if cache is not None else None
    if laid_out is None:
        single = np.fromiter((len(value) == 1 for value in values), dtype=bool, count=len(values))
        setup = None
        if bulk is not None:
            setup = bulk[0]([value[0] if len(value) == 1 else None for value in values])
        laid_out = (single, setup)
        if cache is not None:
            cache[field_type] = laid_out
    single, setup = laid_out
    fast = single[codes_a] & single[codes_b] if bulk is not None else np.zeros(len(codes_a), dtype=bool)
    slow = np.flatnonzero(~fast)
    if len(slow):
        compare = c.compare
        result[slow] = np.fromiter(
            (compare(field_type, values[a], values[b]) for a, b in zip(codes_a[slow].tolist(), codes_b[slow].tolist())),
            dtype=np.int8, count=len(slow))
    rows = np.flatnonzero(fast)
    if len(rows):
        result[rows] = bulk[1](setup, codes_a[rows], codes_b[rows])
    return result


def _distance_at_most_one(left: list[str], right: list[str]) -> np.ndarray:
    """Return, per pair of strings, whether their Damerau-Levenshtein distance is at most 1."""
    if not left:
        return np.zeros(0, dtype=bool)
    return cpdist(left, right, scorer=DamerauLevenshtein.distance, score_cutoff=1, dtype=np.int32) <= 1


def _same_length_one_apart(chars: np.ndarray, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """Return, per pair of DIFFERENT texts of equal length (rows ``codes_a[i]``, ``codes_b[i]`` of ``chars``, the
    texts' characters: _characters), whether their Damerau-Levenshtein distance is 1: one character
    substituted, or two neighbours swapped (an insertion or a deletion changes the length). What
    ``_distance_at_most_one`` gives such pairs, decided in numpy on the characters' codes (at 1,000,000 CRM
    records: 12 s of rapidfuzz calls on the phones' near pairs)."""
    found = np.zeros(len(codes_a), dtype=bool)
    if not len(codes_a):
        return found
    width = chars.shape[1]
    for start in range(0, len(codes_a), SAME_LENGTH_CHUNK):
        a, b = chars[codes_a[start:start + SAME_LENGTH_CHUNK]], chars[codes_b[start:start + SAME_LENGTH_CHUNK]]
        differ = a != b
        count = differ.sum(axis=1)
        one = count == 1
        two = np.flatnonzero(count == 2)
        first = differ[two].argmax(axis=1)
        second = np.minimum(first + 1, width - 1)
        swapped = ((first + 1 < width) & differ[two, second]
                   & (a[two, first] == b[two, second]) & (a[two, second] == b[two, first]))
        one[two[swapped]] = True
        found[start:start + SAME_LENGTH_CHUNK] = one
    return found


def _characters(texts: Sequence[str]) -> np.ndarray:
    """Return the texts' characters as a matrix (a row per text, padded; bytes when every code fits)."""
    width = max(max(map(len, texts), default=0), 1)
    chars = np.array(texts, dtype=f"<U{width}").view(np.uint32).reshape(len(texts), width)
    if chars.size and int(chars.max()) < 256:
        chars = chars.astype(np.uint8)
    return chars


# Pairs of texts compared at a time by _same_length_one_apart (two arrays of chunk x longest text).
SAME_LENGTH_CHUNK = 1_000_000


def _jaro_winkler(left: list[str], right: list[str]) -> np.ndarray:
    if not left:
        return np.zeros(0, dtype=np.float64)
    return cpdist(left, right, scorer=JaroWinkler.normalized_similarity, dtype=np.float64)


def distinct(values: np.ndarray) -> np.ndarray:
    """Return the sorted distinct values of an integer array (np.unique without its hash table: numpy 2.4's
    takes 1.5 s on the 1.4 million candidate pair codes of the CRM 100k set, a sort 0.1 s)."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def distinct_inverse(keys: np.ndarray, bound: int, *, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``np.unique(keys, return_inverse=True)`` of non-negative integer keys below ``bound``, by one sort:
    each key shifted up and its position put in the low bits when both fit in 64 bits (a plain sort is twice as
    fast as the argsort np.unique takes: at 1,000,000 CRM records 17 s of the comparing step went there), else
    a stable argsort (a radix sort for integers). Keys of a small range (``bound`` up to a few times their
    number) are marked in a table instead, with no sort at all. ``overwrite``: the caller no longer needs ``keys``
    (int64), which the sort may then use as its own array."""
    size = len(keys)
    if not size:
        return keys.astype(np.int64), np.empty(0, dtype=np.intp)
    # Positions as int32 below 2**31 keys: the order and the inverse are the step's largest arrays (tens of
    # millions of combined blocking keys at 1,000,000 records).
    position = np.int32 if size < 2**31 else np.intp
    if bound <= DENSE_KEYS_PER_KEY * size + DENSE_KEYS_MIN:
        present = np.zeros(bound, dtype=bool)
        present[keys] = True
        index = np.cumsum(present, dtype=position)
        index -= 1
        return np.flatnonzero(present).astype(np.int64), index[keys]
    bits = max(size - 1, 1).bit_length()
    if max(bound - 1, 1).bit_length() + bits <= 64:
        # In place: one array of 8 bytes per key besides the order and the result.
        packed = keys.view(np.uint64) if overwrite and keys.dtype == np.int64 else keys.astype(np.uint64)
        packed <<= np.uint64(bits)
        packed |= np.arange(size, dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << bits) - 1)).astype(position)
        packed >>= np.uint64(bits)
        ordered = packed.view(np.int64)
    else:
        # The order kept as ``position`` (the argsort's own intp array dropped at once) and the sorted keys not
        # copied again when int64 already: at 1,000,000 CRM records the combined blocking keys (tens of
        # millions, too wide for the packed sort) held 12 bytes a key more at the step's peak.
        order = np.argsort(keys, kind="stable").astype(position, copy=False)
        ordered = keys[order].astype(np.int64, copy=False)
    first = np.empty(size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    distinct = ordered[first]
    del ordered
    packed = None  # the sorted keys are no longer needed
    places = np.cumsum(first, dtype=position)
    del first
    places -= 1
    inverse = np.empty(size, dtype=position)
    inverse[order] = places
    return distinct, inverse


# distinct_inverse marks keys in a table when their range is at most this many per key (plus the minimum).
DENSE_KEYS_PER_KEY = 4
DENSE_KEYS_MIN = 1 << 16


def intern(texts: Sequence[str]) -> np.ndarray:
    """Return an integer per text, equal for equal texts."""
    index: dict[str, int] = {}
    return np.fromiter((index.setdefault(text, len(index)) for text in texts), dtype=np.int64, count=len(texts))


# ---------------------------------------------------------------------------------------------------------------
# Phones and dates


def _phone_setup(items: list) -> tuple:
    present = [item if item is not None else c.Phone("", "") for item in items]
    national_text = [item.national for item in present]
    length = np.fromiter((len(text) for text in national_text), dtype=np.int64, count=len(present))
    return (intern([item.e164 for item in present]), intern(national_text), length, _characters(national_text))


def _phone_levels(setup: tuple, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_phone: exact, same national number, one digit apart (equal length), different."""
    e164, national, length, chars = setup
    levels = np.full(len(codes_a), c.LEVELS[c.PHONE].index("different"), dtype=np.int8)
    same_national = national[codes_a] == national[codes_b]
    near = np.flatnonzero(~same_national & (length[codes_a] == length[codes_b]))
    one_digit = _same_length_one_apart(chars, codes_a[near], codes_b[near])
    levels[near[one_digit]] = 2
    levels[same_national] = 1
    levels[e164[codes_a] == e164[codes_b]] = 0
    return levels


def _email_setup(items: list) -> tuple:
    present = [item if item is not None else c.Email("", "") for item in items]
    return intern([item.exact for item in present]), intern([item.folded for item in present])


def _email_levels(setup: tuple, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_email: exact, the same once the provider's dots and tags are folded, different."""
    exact, folded = setup
    levels = np.full(len(codes_a), c.LEVELS[c.EMAIL].index("different"), dtype=np.int8)
    levels[folded[codes_a] == folded[codes_b]] = 1
    levels[exact[codes_a] == exact[codes_b]] = 0
    return levels


def _date_setup(items: list) -> tuple:
    parts = np.array([item if item is not None else (0, 0, 0) for item in items], dtype=np.int64).reshape(-1, 3)
    texts = ["%04d%02d%02d" % item if item is not None else "" for item in items]
    return parts, texts, np.array([len(text) for text in texts], dtype=np.int64)


def _date_levels(setup: tuple, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_date: exact, day and month swapped, one digit apart, different."""
    parts, texts, lengths = setup
    a, b = parts[codes_a], parts[codes_b]
    exact = (a == b).all(axis=1)
    swapped = ~exact & (a[:, 0] == b[:, 0]) & (a[:, 1] == b[:, 2]) & (a[:, 2] == b[:, 1])
    levels = np.full(len(codes_a), 3, dtype=np.int8)
    rest = np.flatnonzero(~exact & ~swapped)
    rest = rest[lengths[codes_a[rest]] == lengths[codes_b[rest]]]
    one_digit = _distance_at_most_one([texts[code] for code in codes_a[rest].tolist()],
                                      [texts[code] for code in codes_b[rest].tolist()])
    levels[rest[one_digit]] = 2
    levels[swapped] = 1
    levels[exact] = 0
    return levels


# ---------------------------------------------------------------------------------------------------------------
# Company names


def _company_setup(items: list) -> list:
    # Nothing laid out for every distinct company: the scan's chunk compares few pairs of a million companies,
    # and what _company_levels reads it lays out for the values its pairs hold.
    return items


def _company_levels(items: list, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons._grade_company: exact; different digits; one typo in the folded or the typed spelling (edit
    distances by rapidfuzz's cpdist, the per-pair function's own scorer), or one per word (the few pairs of as
    many words, pair by pair); else fuzzy_mid or different by Jaro-Winkler."""
    used = distinct(np.concatenate([codes_a, codes_b]))
    a, b = np.searchsorted(used, codes_a), np.searchsorted(used, codes_b)  # places among the values used
    present = [items[code] for code in used.tolist()]
    key = np.array([item.key for item in present], dtype=object)
    levels = np.full(len(codes_a), 3, dtype=np.int8)
    exact = key[a] == key[b]
    levels[exact] = 0
    digits = np.array([item.digits for item in present], dtype=object)
    rest = np.flatnonzero(~exact & (digits[a] == digits[b]))
    del digits
    a, b = a[rest], b[rest]
    plain = np.array([item.plain for item in present], dtype=object)
    typo = np.zeros(len(rest), dtype=bool)
    for texts in (key, plain):
        lengths = np.fromiter(map(len, texts.tolist()), dtype=np.int64, count=len(texts))
        near = np.flatnonzero(~typo & (np.minimum(lengths[a], lengths[b]) >= 5)
                              & (np.abs(lengths[a] - lengths[b]) <= 1))
        typo[near] = _distance_at_most_one(texts[a[near]].tolist(), texts[b[near]].tolist())
    # A name's words in its folded and its typed spelling, when as many (comparisons.words_one_edit).
    words = np.fromiter((folded.count(" ") + 1 if folded.count(" ") == typed.count(" ") else 0
                         for folded, typed in zip(key.tolist(), plain.tolist())), dtype=np.int64, count=len(key))
    per_word = np.flatnonzero(~typo & (words[a] >= 2) & (words[a] == words[b]))
    words_one_edit = c.words_one_edit
    typo[per_word] = np.fromiter((words_one_edit(present[x], present[y])
                                  for x, y in zip(a[per_word].tolist(), b[per_word].tolist())),
                                 dtype=bool, count=len(per_word))
    levels[rest[typo]] = 1
    other = np.flatnonzero(~typo)
    similar = _jaro_winkler(key[a[other]].tolist(), key[b[other]].tolist()) >= c.MID
    levels[rest[other[similar]]] = 2
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
        self.key[where] = intern([item.key for item in present])
        self.phonetic = np.full(size, -1, dtype=np.int64)
        self.phonetic[where] = intern([item.phonetic for item in present])
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
        self.folded_id = intern(self.folded.tolist())
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
        # Two names of the table in different groups are two names, whatever their spelling (comparisons.known_apart).
        apart = np.zeros(len(close), dtype=bool)
        unlike = groups[~close[groups]]
        apart[unlike] = np.fromiter((known_apart(words[a], words[b]) for a, b in zip(short[unlike].tolist(),
                                                                                     long[unlike].tolist())),
                                    dtype=bool, count=len(unlike))
        close |= apart  # kept out of the edit and similarity tests below, then cleared
        for lengths, texts in ((self.folded_length, self.folded), (self.plain_length, self.plain)):
            edit = np.flatnonzero(~close & (np.minimum(lengths[short], lengths[long]) >= 4)
                                  & (np.abs(lengths[short] - lengths[long]) <= 1))
            close[edit] = _distance_at_most_one(texts[short[edit]].tolist(), texts[long[edit]].tolist())
        lengths = self.plain_length
        three = np.flatnonzero(~close & (lengths[short] == c.SHORT_TYPO_LENGTH)
                               & (lengths[long] == c.SHORT_TYPO_LENGTH))
        close[three] = np.fromiter((c.short_typo(a, b) for a, b in zip(self.plain[short[three]].tolist(),
                                                                       self.plain[long[three]].tolist())),
                                   dtype=bool, count=len(three))
        lengths = self.folded_length
        similar = np.flatnonzero(~close & (np.minimum(lengths[short], lengths[long]) >= c.LONG_WORD)
                                 & (np.abs(lengths[short] - lengths[long]) <= c.LONG_WORD_LENGTHS_APART))
        close[similar] = _jaro_winkler(self.folded[short[similar]].tolist(),
                                       self.folded[long[similar]].tolist()) >= c.HIGH
        close[apart] = False
        return close

    def gendered_words(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Return, per pair of word ids, whether one is the other with a feminine ending (Petrov / Petrova)."""
        folded_left, folded_right = self.folded_id[left], self.folded_id[right]
        return (((self.feminine[left] == folded_right[:, None]).any(axis=1)
                 | (self.feminine[right] == folded_left[:, None]).any(axis=1))
                & (self.plain_length[left] != self.plain_length[right]))

    def _any_word(self, test, codes_a: np.ndarray, codes_b: np.ndarray, slot: int, rows: np.ndarray) -> np.ndarray:
        """Return, for the name pairs ``rows``, whether word ``slot`` of the first name passes ``test`` with any
        word of the second (each distinct pair of words tested once)."""
        right = self.words[codes_b[rows], :int(self.count[codes_b[rows]].max())]
        valid = right >= 0
        keys = (self.words[codes_a[rows], slot][:, None] * len(self.word_list) + right)[valid]
        unique, inverse = distinct_inverse(keys, len(self.word_list) ** 2)
        found = np.zeros(right.shape, dtype=bool)
        found[valid] = test(unique // len(self.word_list), unique % len(self.word_list))[inverse]
        return found.any(axis=1)

    def may_pair_off(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        """Return, per name pair, whether every word of the shorter name has a close word in the other: the
        condition of the "variant" and "typo" levels (the per-pair grader's pairing-off needs it and more).
        Word by word of the shorter name: a pair is out at its first word without a close one."""
        swap = self.count[codes_a] > self.count[codes_b]
        short, long = np.where(swap, codes_b, codes_a), np.where(swap, codes_a, codes_b)
        alive = np.ones(len(codes_a), dtype=bool)
        for slot in range(self.words.shape[1]):
            rows = np.flatnonzero(alive & (self.count[short] > slot))
            if not len(rows):
                break
            alive[rows] = self._any_word(self.close, short, long, slot, rows)
        return alive

    def gendered(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        """Return, per name pair, comparisons.gendered_pair of the two names' words."""
        found = np.zeros(len(codes_a), dtype=bool)
        for slot in range(self.words.shape[1]):
            rows = np.flatnonzero(~found & (self.count[codes_a] > slot))
            if not len(rows):
                break
            found[rows] = self._any_word(self.gendered_words, codes_a, codes_b, slot, rows)
        return found


def _person_levels(names: _Names, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    """comparisons.grade_person, the pairs that can only be "fuzzy_mid" or "different" decided in numpy."""
    levels = np.empty(len(codes_a), dtype=np.int8)
    # The chunks on the workers' threads (the distinct names read once, shared), each worker's chunks smaller
    # in proportion: the word pairs held at once stay those of one NAME_CHUNK.
    pieces = -(-len(codes_a) // NAME_CHUNK) * (workers.count() if len(codes_a) >= NAME_PARALLEL_MIN else 1)
    step = max(-(-len(codes_a) // max(pieces, 1)), 1)

    def grade_chunk(start: int) -> None:
        stop = start + step
        levels[start:stop] = _person_chunk(names, codes_a[start:stop], codes_b[start:stop])

    workers.run_map(grade_chunk, range(0, len(codes_a), step))
    return levels


def _person_chunk(names: _Names, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
    levels = np.full(len(codes_a), len(c.LEVELS[c.PERSON_NAME]) - 1, dtype=np.int8)
    exact = names.key[codes_a] == names.key[codes_b]
    levels[exact] = 0
    open_ = np.flatnonzero(~exact)
    a, b = codes_a[open_], codes_b[open_]
    hard = names.initial[a] | names.initial[b] | (names.phonetic[a] == names.phonetic[b])
    hard[~hard] = names.may_pair_off(a[~hard], b[~hard])
    items, grade = names.items, c.grade_person
    hard_rows = open_[hard]
    levels[hard_rows] = np.fromiter(
        (grade(items[x], items[y]) for x, y in zip(codes_a[hard_rows].tolist(), codes_b[hard_rows].tolist())),
        dtype=np.int8, count=len(hard_rows))
    # The rest are "fuzzy_mid" or "different" by the whole names' similarity; a gendered pair is "different".
    easy = open_[~hard]
    similar = easy[_jaro_winkler(names.key_text[codes_a[easy]].tolist(),
                                 names.key_text[codes_b[easy]].tolist()) >= c.MID]
    similar = similar[~names.gendered(codes_a[similar], codes_b[similar])]
    levels[similar] = c.LEVELS[c.PERSON_NAME].index("fuzzy_mid")
    return levels


# Per type graded in bulk: what is read once per distinct value (of the values' single items, None for a value
# of several), and the grader of the pairs of single items given it.
_BULK = {c.PHONE: (_phone_setup, _phone_levels), c.EMAIL: (_email_setup, _email_levels),
         c.DATE: (_date_setup, _date_levels), c.PERSON_NAME: (_Names, _person_levels),
         c.COMPANY_NAME: (_company_setup, _company_levels)}
