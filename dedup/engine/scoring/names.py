"""First-name variants and nicknames (a shipped table, English and Russian) and a phonetic key for name words."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dedup.engine.normalize import fold_token, transliterate

try:  # jellyfish's Metaphone (Rust, well kept); without it the phonetic level falls back to the folded word
    from jellyfish import metaphone as _metaphone
except ImportError:  # pragma: no cover - jellyfish is a dependency
    _metaphone = None

VARIANTS_FILE = Path(__file__).with_name("data") / "first_names.txt"


def _load_groups(path: Path) -> dict[str, frozenset[int]]:
    groups: dict[str, set[int]] = {}
    number = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        number += 1
        for word in line.split(","):
            folded = fold_token(word.strip())
            if folded:
                groups.setdefault(folded, set()).add(number)
    return {word: frozenset(ids) for word, ids in groups.items()}


def _load_spelled(path: Path) -> frozenset[str]:
    """Return the table's words as typed, transliterated (not folded: "Bien" folds like "Ben", typed it is no name
    of the table)."""
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.update(transliterate(word.strip()) for word in line.split(","))
    return frozenset(words - {""})


_GROUPS = _load_groups(VARIANTS_FILE)
_SPELLED = _load_spelled(VARIANTS_FILE)
_NO_GROUP: frozenset[int] = frozenset()


def variant_groups(folded_word: str) -> frozenset[int]:
    """Return the ids of the variant groups a folded name word belongs to (empty for a word not in the table)."""
    return _GROUPS.get(folded_word, _NO_GROUP)


def known_apart(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Tell whether two name words, each (folded, plain), are names of the table as typed, in different groups: two
    names, not a typo of one another (Мария / Дарья, Maria / Daria: one letter apart, two women). Judged on the
    typed words: folded, "Bien" / "Biet" are "ben" / "bet", Ben and Beth, but typed they are no names of it."""
    groups_a, groups_b = variant_groups(a[0]), variant_groups(b[0])
    return (bool(groups_a) and bool(groups_b) and not groups_a & groups_b
            and transliterate(a[1]) in _SPELLED and transliterate(b[1]) in _SPELLED)


def are_variants(folded_a: str, folded_b: str) -> bool:
    """Tell whether two folded name words are one name: equal, or in one group (Mike / Michael / Миша)."""
    return folded_a == folded_b or bool(variant_groups(folded_a) & variant_groups(folded_b))


@lru_cache(maxsize=1 << 16)
def phonetic_key(folded_word: str) -> str:
    """Return the Metaphone code of a folded (ASCII) word: Smith / Smyth / Smithe -> SM0."""
    if not folded_word:
        return ""
    if _metaphone is None:  # pragma: no cover
        return folded_word
    try:
        return _metaphone(folded_word) or folded_word
    except Exception:  # pragma: no cover - digits or odd input
        return folded_word
