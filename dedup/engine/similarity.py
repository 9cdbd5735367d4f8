"""Score how alike two names, company names or texts are (0..100) with rapidfuzz; pure functions, no ORM.

Every scorer is symmetric, returns an int in 0..100, 100 for values with equal keys, and 0 when either value
cannot be keyed (garbage, None). ``best_pairs`` scores a whole block at once with ``rapidfuzz.process.cdist`` and
gives exactly the scores the single-pair functions give.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.process import cdist

from dedup.engine.normalize import company_name_key, initial_matches, is_initial, name_words, text_key

# A name that has every word of the other plus more (a middle name or patronymic: "Ivan Petrov" vs "Ivan
# Sergeevich Petrov") scores at least this: near, but below an exact match. Only when the shorter name has two
# full words or more: "Ivan" is contained in every Ivan's name.
SUBSET_SCORE = 90
# A name matched only through an initial (Petrov I. ~ Ivan Petrov) is compatible, never certain.
INITIALS_CAP = 95
# Gendered forms (Petrov / Petrova, Aleksandr / Aleksandra, Chaikovski / Chaikovskaia) are different people by
# default: they would otherwise score ~95 as one-letter "typos".
GENDERED_CAP = 60

# (masculine ending, feminine ending) of folded words; the stem left must have at least three letters.
_GENDERED_ENDINGS = (("", "a"), ("i", "aia"), ("oi", "aia"), ("ski", "ska"))
_MIN_STEM = 3
# Rows of a block scored per cdist call: bounds the score matrices to _CHUNK_ROWS x len(block) doubles.
_CHUNK_ROWS = 512


def _round(score: float) -> int:
    """Round half up to an int in 0..100 (the same for a single pair and for a cdist matrix)."""
    return min(100, max(0, int(score + 0.5)))


# ---------------------------------------------------------------------------------------------------------------
# Person names


def name_similarity(a: object, b: object) -> int:
    """Return how alike two person names are, 0..100, on their folded words, word order ignored.

    ``Иван Петров`` ~ ``PETROV ivan`` = 100; an initial matching a full word counts as that word, capped at
    INITIALS_CAP (``Petrov I.`` ~ ``Ivan Petrov`` = 95); an added middle name or patronymic scores at least
    SUBSET_SCORE (90); gendered forms are capped at GENDERED_CAP. Otherwise the score is the token-sort ratio.
    """
    words_a, words_b = name_words(a), name_words(b)
    if not words_a or not words_b:
        return 0
    return _name_score(words_a, words_b)


def _name_score(words_a: list[str], words_b: list[str]) -> int:
    if words_a == words_b:
        return 100
    rest_a, rest_b = _unshared(words_a, words_b)
    expansions_a, expansions_b = _expansions(rest_a, rest_b), _expansions(rest_b, rest_a)
    if expansions_a or expansions_b:
        words_a, words_b = _expand(words_a, expansions_a), _expand(words_b, expansions_b)
        rest_a, rest_b = _unshared(words_a, words_b)
    # Keys are sorted words, so a plain ratio on them is rapidfuzz's token-sort ratio.
    score = fuzz.ratio(" ".join(sorted(words_a)), " ".join(sorted(words_b)))
    if _contains(words_a, words_b, rest_a, rest_b):
        score = max(score, SUBSET_SCORE)
    if expansions_a or expansions_b:
        score = min(score, INITIALS_CAP)
    if score > GENDERED_CAP and any(gendered_pair(word_a, word_b) for word_a in rest_a for word_b in rest_b):
        score = GENDERED_CAP
    return _round(score)


_SUBSET_MAX_WORDS = 6  # 2**6 sub-multisets per name at most; longer "names" are pasted text


def _contains(words_a: list[str], words_b: list[str], rest_a: list[str], rest_b: list[str]) -> bool:
    """Tell whether one name has every word of the other (with two full words or more) and more words."""
    if max(len(words_a), len(words_b)) > _SUBSET_MAX_WORDS:
        return False
    smaller = words_a if not rest_a else words_b if not rest_b else None
    return smaller is not None and _full_count(smaller) >= 2


def _full_count(words: list[str]) -> int:
    return sum(1 for word in words if not is_initial(word))


def _unshared(words_a: list[str], words_b: list[str]) -> tuple[list[str], list[str]]:
    """Return the words of each name that the other lacks (multisets; names are a few words, lists are fastest)."""
    rest_b = list(words_b)
    rest_a = []
    for word in words_a:
        if word in rest_b:
            rest_b.remove(word)
        else:
            rest_a.append(word)
    return rest_a, rest_b


def _expansions(rest: list[str], others: list[str]) -> list[tuple[str, str]]:
    """Pair each unshared initial with the first unshared full word of the other name it abbreviates."""
    initials = sorted(word for word in rest if is_initial(word))
    if not initials:
        return []
    candidates = sorted(word for word in others if not is_initial(word))
    pairs = []
    for initial in initials:
        for word in candidates:
            if initial_matches(initial, word):
                pairs.append((initial, word))
                candidates.remove(word)
                break
    return pairs


def _expand(words: list[str], expansions: list[tuple[str, str]]) -> list[str]:
    result = list(words)
    for initial, word in expansions:
        result[result.index(initial)] = word
    return result


def gendered_pair(word_a: str, word_b: str) -> bool:
    """Tell whether two folded words are the masculine and feminine forms of one name (petrov / petrova)."""
    if word_a[:_MIN_STEM] != word_b[:_MIN_STEM] or abs(len(word_a) - len(word_b)) > 3:
        return False
    for first, second in ((word_a, word_b), (word_b, word_a)):
        for masculine, feminine in _GENDERED_ENDINGS:
            if not (first.endswith(masculine) and second.endswith(feminine)):
                continue
            stem = first[: len(first) - len(masculine)]
            if len(stem) >= _MIN_STEM and stem == second[: len(second) - len(feminine)]:
                return True
    return False


def _gendered(words_a: list[str], words_b: list[str]) -> bool:
    rest_a, rest_b = _unshared(words_a, words_b)
    return any(gendered_pair(word_a, word_b) for word_a in rest_a for word_b in rest_b)


# ---------------------------------------------------------------------------------------------------------------
# Company names and any text


def company_similarity(a: object, b: object) -> int:
    """Return how alike two company names are, 0..100, legal forms and punctuation ignored.

    The best of the token-sort ratio and the ratio with spaces removed (``Coca Cola`` ~ ``Coca-Cola`` ~
    ``CocaCola``).
    """
    key_a, key_b = company_name_key(a), company_name_key(b)
    if key_a is None or key_b is None:
        return 0
    if key_a == key_b:
        return 100
    return _round(max(fuzz.token_sort_ratio(key_a, key_b), fuzz.ratio(_compact(key_a), _compact(key_b))))


def text_similarity(a: object, b: object) -> int:
    """Return how alike two texts are, 0..100, case and spacing ignored: the best of ratio and token-sort ratio."""
    key_a, key_b = text_key(a), text_key(b)
    if key_a is None or key_b is None:
        return 0
    if key_a == key_b:
        return 100
    return _round(max(fuzz.ratio(key_a, key_b), fuzz.token_sort_ratio(key_a, key_b)))


def _compact(key: str) -> str:
    return key.replace(" ", "")


SCORERS = {"person_name": name_similarity, "company_name": company_similarity, "text": text_similarity}


def similarity(kind: str, a: object, b: object) -> int:
    """Return the similarity of two values of a registry field kind; kinds without their own scorer use text."""
    return SCORERS.get(kind, text_similarity)(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Batch scoring inside one block


def best_pairs(keys: Sequence[str | None], threshold: int, *, kind: str = "person_name") -> list[tuple[int, int, int]]:
    """Return ``(i, j, score)`` for every pair of keys of one block scoring at least threshold, best first.

    ``keys`` are the keys of the matching normaliser (``person_name_key`` for "person_name",
    ``company_name_key`` for "company_name", ``text_key`` for anything else); None entries are never paired.
    ``i < j``; the scores are the ones the single-pair function gives. Pairs are ordered by score, then i, j.
    """
    indexes = [index for index, key in enumerate(keys) if isinstance(key, str) and key]
    if len(indexes) < 2:
        return []
    threshold = max(0, min(100, int(threshold)))
    values = [keys[index] for index in indexes]
    if kind == "person_name":
        found = _name_pairs(values, threshold)
    elif kind == "company_name":
        found = _matrix_pairs(values, threshold, _company_matrix)
    else:
        found = _matrix_pairs(values, threshold, _text_matrix)
    pairs = [(indexes[i], indexes[j], score) for i, j, score in found]
    pairs.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return pairs


def _rounded(matrix: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(matrix + 0.5), 0, 100).astype(np.int16)


def _cutoff(threshold: int) -> float:
    # A raw score x rounds to threshold or more when x >= threshold - 0.5; below that cdist may skip the work.
    return max(0.0, threshold - 0.5 - 1e-9)


def _matrix_pairs(values: list[str], threshold: int, scorer) -> list[tuple[int, int, int]]:
    """Score every row chunk against the whole block and keep the upper-triangle pairs at threshold or more."""
    found = []
    total = len(values)
    for start in range(0, total, _CHUNK_ROWS):
        stop = min(total, start + _CHUNK_ROWS)
        scores = _rounded(scorer(values[start:stop], values, _cutoff(threshold)))
        rows, columns = np.nonzero(scores >= threshold)
        for row, column in zip(rows.tolist(), columns.tolist()):
            i = start + row
            if column > i:
                found.append((i, column, int(scores[row, column])))
    return found


def _company_matrix(rows: list[str], columns: list[str], cutoff: float) -> np.ndarray:
    return np.maximum(
        cdist(rows, columns, scorer=fuzz.token_sort_ratio, dtype=np.float64, score_cutoff=cutoff),
        cdist(
            [_compact(v) for v in rows], [_compact(v) for v in columns],
            scorer=fuzz.ratio, dtype=np.float64, score_cutoff=cutoff,
        ),
    )


def _text_matrix(rows: list[str], columns: list[str], cutoff: float) -> np.ndarray:
    return np.maximum(
        cdist(rows, columns, scorer=fuzz.ratio, dtype=np.float64, score_cutoff=cutoff),
        cdist(rows, columns, scorer=fuzz.token_sort_ratio, dtype=np.float64, score_cutoff=cutoff),
    )


def _letter_bit(char: str) -> int:
    # 64 buckets; two letters sharing one only adds pairs to re-score exactly, never loses one.
    return 1 << (ord(char) & 63)


def _name_pairs(values: list[str], threshold: int) -> list[tuple[int, int, int]]:
    """Score a block of name keys with cdist; re-score one by one only the pairs where an initial may expand.

    An initial of one name can only expand to a full word of the other that starts with its letter (or "c" for
    "k"), so a pair whose initials' letters meet none of the other's first letters scores as plain text: the
    token-sort ratio, raised to SUBSET_SCORE where one name contains the other, capped for gendered forms.
    """
    words = [sorted(value.split()) for value in values]
    texts = [" ".join(item) for item in words]
    initial_bits = np.zeros(len(words), dtype=np.uint64)
    full_bits = np.zeros(len(words), dtype=np.uint64)
    for index, item in enumerate(words):
        for word in item:
            if is_initial(word):
                initial_bits[index] |= np.uint64(_letter_bit(word[0]) | (_letter_bit("c") if word == "k" else 0))
            else:
                full_bits[index] |= np.uint64(_letter_bit(word[0]))
    contained = _contained_pairs(words) if SUBSET_SCORE >= threshold else {}

    found = []
    for start in range(0, len(words), _CHUNK_ROWS):
        stop = min(len(words), start + _CHUNK_ROWS)
        rows = texts[start:stop]
        scores = cdist(rows, texts, scorer=fuzz.ratio, dtype=np.float64, score_cutoff=_cutoff(threshold))
        for row in range(start, stop):
            for column in contained.get(row, ()):
                scores[row - start, column] = max(scores[row - start, column], SUBSET_SCORE)
        rounded = _rounded(scores)
        may_expand = ((initial_bits[start:stop, None] & full_bits[None, :]) != 0) | (
            (full_bits[start:stop, None] & initial_bits[None, :]) != 0
        )
        upper = np.arange(start, stop)[:, None] < np.arange(len(words))[None, :]
        # Plain pairs: the matrix score, with gendered forms capped (checked on the few pairs above threshold).
        row_ids, column_ids = np.nonzero((rounded >= threshold) & ~may_expand & upper)
        for row, column in zip(row_ids.tolist(), column_ids.tolist()):
            i, score = start + row, int(rounded[row, column])
            if score > GENDERED_CAP and _gendered(words[i], words[column]):
                score = GENDERED_CAP
            if score >= threshold:
                found.append((i, column, score))
        # Pairs where an initial may stand for a word of the other name: scored one by one.
        row_ids, column_ids = np.nonzero(may_expand & upper)
        for row, column in zip(row_ids.tolist(), column_ids.tolist()):
            score = _name_score(words[start + row], words[column])
            if score >= threshold:
                found.append((start + row, column, score))
    return found


def _contained_pairs(words: list[list[str]]) -> dict[int, list[int]]:
    """Return, for each name of a block, the names it contains or is contained in (see _contains)."""
    by_words: dict[tuple[str, ...], list[int]] = {}
    for position, item in enumerate(words):
        by_words.setdefault(tuple(item), []).append(position)
    pairs: dict[int, list[int]] = {}
    for position, item in enumerate(words):
        if not 3 <= len(item) <= _SUBSET_MAX_WORDS:
            continue
        seen = set()
        # Every sub-multiset with fewer words (item is sorted, so each subset tuple is sorted too).
        for mask in range(1, (1 << len(item)) - 1):
            subset = tuple(word for bit, word in enumerate(item) if mask >> bit & 1)
            if subset in seen or subset not in by_words or _full_count(list(subset)) < 2:
                continue
            seen.add(subset)
            for other in by_words[subset]:
                pairs.setdefault(position, []).append(other)
                pairs.setdefault(other, []).append(position)
    return pairs
