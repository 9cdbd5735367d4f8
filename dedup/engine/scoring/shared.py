"""Shared contact values: the phones and emails several people give (a switchboard, a family mailbox).

Found per field from the records' own data (the names of their holders told apart, spellings of one name being
one person), stored with the model (``FieldWeights.shared``) and used by ``matcher.split_shared`` to grade a
disagreement next to a shared value on its own level.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import graders, levels
from dedup.engine.scoring.model import CONTACT_TYPES, Model


class Records(Protocol):
    """What is read here of matcher.Records (not imported: the matcher imports this module)."""

    schema: Sequence

    def coded(self, position: int) -> levels.CodedColumn: ...



def shared_values(records: Records) -> list[dict[str, int]]:
    """Return, per field, the contact values held by records of different people (told apart by their name),
    each with how many people hold it; an empty map for other fields."""
    result: list[dict[str, int]] = [{} for _spec in records.schema]
    identity = next((position for position, spec in enumerate(records.schema) if spec.type == c.PERSON_NAME), None)
    if identity is None:
        return result
    names = records.coded(identity)
    name_keys = graders.intern([value[0].key for value in names.values])  # a code per distinct name key
    for position, spec in enumerate(records.schema):
        if spec.type not in CONTACT_TYPES:
            continue
        contacts = records.coded(position)
        # Each distinct (contact value, name) once, in the order the records first hold them.
        rows = np.flatnonzero((names.codes >= 0) & (contacts.codes >= 0))
        combined = contacts.codes[rows].astype(np.int64) * max(len(names.values), 1) + names.codes[rows]
        unique, first = np.unique(combined, return_index=True)
        unique = unique[np.argsort(first, kind="stable")]
        width = max(len(names.values), 1)
        value_keys = c.column_exact_keys(spec.type, contacts.values)
        several = _held_under_several_names(value_keys, name_keys, unique // width, unique % width)
        unique = unique[np.isin(unique // width, several[0])]
        holders: dict[str, dict[str, c.Person]] = {}
        for value_code, name_code in zip((unique // width).tolist(), (unique % width).tolist()):
            name = names.values[name_code][0]
            for key in value_keys[value_code]:
                if key not in several[1]:
                    continue
                known = holders.setdefault(key, {})
                if len(known) < SHARED_MAX_NAMES:
                    known.setdefault(name.key, name)
        candidates = [(key, list(known.values())) for key, known in holders.items() if len(known) > 1]
        graded = _graded_name_pairs([held_by for _key, held_by in candidates])
        shared = {}
        for key, held_by in candidates:
            people = _people_among(held_by, graded)
            if people > 1:
                shared[key] = people
        result[position] = shared
    return result


def _held_under_several_names(value_keys: list[list[str]], name_keys: np.ndarray, value_codes: np.ndarray,
                              name_codes: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """Return the contact values (codes) holding a key that records give under two or more names, and those keys:
    the only ones shared_values needs to look at (most phones and emails belong to one name)."""
    index: dict[str, int] = {}
    flat = [index.setdefault(key, len(index)) for keys in value_keys for key in keys]
    counts = np.fromiter((len(keys) for keys in value_keys), dtype=np.int64, count=len(value_keys))
    starts = np.cumsum(counts) - counts
    per_pair = counts[value_codes]
    within = np.arange(int(per_pair.sum())) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    keys = np.asarray(flat, dtype=np.int64)[np.repeat(starts[value_codes], per_pair) + within]
    held = levels.distinct(keys * max(len(name_keys), 1) + np.repeat(name_keys[name_codes], per_pair))
    several = np.flatnonzero(np.bincount(held // max(len(name_keys), 1), minlength=len(index)) > 1)
    is_several = np.zeros(len(index) + 1, dtype=bool)
    is_several[several] = True
    flags = np.logical_or.reduceat(is_several[np.asarray(flat + [len(index)], dtype=np.int64)],
                                   np.minimum(starts, len(flat))) & (counts > 0)
    texts = list(index)
    return np.flatnonzero(flags), {texts[key] for key in several.tolist()}


def model_shared(model: Model) -> list[dict[str, int]]:
    """Return a model's shared contact values per field (as ``comparison_levels`` takes them)."""
    return [weights.shared for weights in model.fields]


# Names compared per shared value at most (a switchboard of 200 is shared whatever the exact count).
SHARED_MAX_NAMES = 50


def _graded_name_pairs(lists: Sequence[list[c.Person]]) -> dict[tuple[int, int], int]:
    """Return the level of every pair (later name, earlier name) within each list, by the names' ids, graded in
    bulk (levels.graders): the switchboards' and mailboxes' holders, compared as _people_among compares them."""
    index: dict[int, int] = {}
    values: list[tuple[c.Person]] = []
    wanted: dict[tuple[int, int], None] = {}
    for names in lists:
        codes = []
        for name in names:
            code = index.get(id(name))
            if code is None:
                code = index[id(name)] = len(values)
                values.append((name,))
            codes.append(code)
        for later in range(1, len(codes)):
            for earlier in range(later):
                wanted[(codes[later], codes[earlier])] = None
    if not wanted:
        return {}
    pairs = np.array(list(wanted), dtype=np.int64)
    found = graders.grade(c.PERSON_NAME, values, pairs[:, 0], pairs[:, 1]).tolist()
    return {(id(values[a][0]), id(values[b][0])): level for (a, b), level in zip(pairs.tolist(), found)}


def _people_among(names: list[c.Person], graded: Mapping[tuple[int, int], int]) -> int:
    """Return how many people the names are: spellings of one name (Olga Smirnova / Olga Smirnvoa) are one.
    ``graded``: the level of each (later, earlier) pair of the names, by their ids (_graded_name_pairs)."""
    people: list[c.Person] = []
    different = len(c.LEVELS[c.PERSON_NAME]) - 1
    for name in names:
        if not any(graded[(id(name), id(known))] < different - 1 for known in people):
            people.append(name)
    return len(people)
