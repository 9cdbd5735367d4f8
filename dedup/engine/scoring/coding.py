"""Values read for matching, coded as they are read: each distinct raw value prepared once, each record a code.

A million records hold far fewer distinct values than values (a country, a big company, a common name), and the
comparing code works on codes anyway (levels.CodedColumn): so a column is built as the codes of its records and
the list of its distinct prepared values, never as a Python list of a million references kept beside a cache of
what was read. ``CodedValues`` gives such a column the list's face (``column[row]`` is the prepared value, None
when missing) for the code that compares a few pairs one by one.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

import numpy as np

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import levels


class ColumnCoder:
    """One field's column being read: ``add_all(raws)`` appends the codes of raw values (each a value or a list
    of them), preparing one only when no equal raw value was read before (comparisons.prepare; -1: missing).

    ``stored``: the raw values are keys the database stores normalised (comparisons.prepare's ``stored``).
    """

    def __init__(self, field_type: str, *, stored: bool = False):
        self.field_type = field_type
        self.stored = stored
        self.values: list[tuple] = []
        self.codes = array("i")
        self._index: dict = {}
        self._by_region: dict[str, dict] = {}

    def code(self, raw: object, region: str | None = None) -> int:
        """Return the code of a raw value, preparing it when it is new."""
        key = _read_key(raw)
        if key is None:
            return self._new(raw, region)
        index = self._index if region is None or self.field_type != c.PHONE else self._regional(region)
        code = index.get(key)
        if code is None:
            code = index[key] = self._new(raw, region)
        return code

    def add_all(self, raws: Sequence[object], regions: Sequence[str | None] | None = None) -> None:
        """Append the code of each raw value (with its region, for phones): a text read before is looked up at C
        speed, the rest go through ``code``."""
        phone = regions is not None and self.field_type == c.PHONE
        if phone:
            indexes = [self._index if region is None else self._regional(region) for region in regions]
            found = [index.get(raw) if type(raw) is str else None for raw, index in zip(raws, indexes)]
        else:
            get = self._index.get
            found = [get(raw) if type(raw) is str else None for raw in raws]
        code = self.code
        for row, known in enumerate(found):
            if known is None:  # new, or first seen earlier in this batch, or not a text
                raw = raws[row]
                if raw is None:
                    found[row] = -1
                elif type(raw) is str and (known := (indexes[row] if phone else self._index).get(raw)) is not None:
                    found[row] = known
                else:
                    found[row] = code(raw, regions[row] if phone else None)
        self.codes.extend(found)

    def coded(self) -> levels.CodedColumn:
        """Return the column added so far, coded (the reading cache is dropped: the column is done)."""
        return self.column(self.codes)

    def column(self, codes) -> levels.CodedColumn:
        """Return the column of these codes (given by the coder's ``code``), the reading cache dropped."""
        self._index, self._by_region = {}, {}
        return levels.CodedColumn(np.asarray(codes, dtype=np.int32).copy(), self.values)

    def _regional(self, region: str) -> dict:
        """The reading cache of one country's phones (a national number reads differently in each)."""
        return self._by_region.setdefault(region, {})

    def _new(self, raw: object, region: str | None) -> int:
        prepared = c.prepare(self.field_type, raw, region=region, stored=self.stored)
        if prepared is None:
            return -1
        self.values.append(prepared)
        return len(self.values) - 1


def _read_key(raw: object):
    """Return a hashable key of a raw value for the reading cache, or None when it is not worth caching: a text
    or a tuple of texts (a list of one text is that text). Equal raw values get one code, and so one prepared
    value."""
    if isinstance(raw, list):
        raw = raw[0] if len(raw) == 1 else tuple(raw)
    if isinstance(raw, str):
        return raw if len(raw) <= c.MAX_VALUE_LENGTH else None
    if isinstance(raw, tuple) and all(isinstance(item, str) and len(item) <= c.MAX_VALUE_LENGTH for item in raw):
        return raw
    return None


class CodedValues(Sequence):
    """A coded column seen as the list of its records' prepared values (None where missing)."""

    __slots__ = ("_codes", "_values")

    def __init__(self, coded: levels.CodedColumn):
        self._codes = coded.codes
        self._values = coded.values

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[index] for index in range(*row.indices(len(self)))]
        code = int(self._codes[row])
        return None if code < 0 else self._values[code]

    def __iter__(self) -> Iterator[tuple | None]:
        values = self._values
        return (None if code < 0 else values[code] for code in self._codes.tolist())


def coded_values(coded: Sequence[levels.CodedColumn]) -> list[CodedValues]:
    """Return the columns' list faces."""
    return [CodedValues(column) for column in coded]
