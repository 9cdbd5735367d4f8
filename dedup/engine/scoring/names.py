"""First-name variants and nicknames (a shipped table, English and Russian) and a phonetic key for name words."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dedup.engine.normalize import fold_token

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


_GROUPS = _load_groups(VARIANTS_FILE)
_NO_GROUP: frozenset[int] = frozenset()


def variant_groups(folded_word: str) -> frozenset[int]:
    """Return the ids of the variant groups a folded name word belongs to (empty for a word not in the table)."""
    return _GROUPS.get(folded_word, _NO_GROUP)


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
