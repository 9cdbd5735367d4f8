"""The phone fields of a large base read in a child process while this one reads the other fields.

Reading is Python through and through (each distinct value prepared once: a phone parsed and validated, a name
folded, transliterated and keyed), so a second thread would only wait for the GIL; a child process gets the
second core. Phones go there because they are the costliest field to read (at 1,000,000 CRM records 9 of the
21 CPU s) and their prepared form is two strings (``Phone(e164, national)``), cheap to send back.

The child is a fresh interpreter (``python -m dedup.engine.scoring.read_apart``), not a fork: a forked child
keeps the old copy of every page this process writes meanwhile (reading touches every record), which at
1,000,000 records would double the records' memory; and a subprocess may be started from a Celery prefork
worker, where multiprocessing may not. The raw phones and regions go to it as one text each in a file, with
this process's placeholders and default region; it runs the same ``ColumnCoder`` on the same values in the
same order, so its codes and values are those this process would have read (the tests compare). Not used with
one worker, for a small base, or when a raw value is not a text; a child that fails leaves its fields to this
process, read as before.
"""
from __future__ import annotations

import os
import pickle
import resource
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dedup.engine import normalize
from dedup.engine.scoring import coding, levels, workers
from dedup.engine.scoring import comparisons as c

# Below this many records the child's start (an interpreter and its imports, about half a second) and the
# hand-over cost more than the reading it takes over.
MIN_RECORDS = 100_000
# Records read per batch in the child (as read_records' READ_BATCH).
BATCH = 10_000
_SEPARATOR = "\x00"
# The directory holding the ``dedup`` package, for the child's imports.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[3])


def allowed(size: int) -> bool:
    """Tell whether a base of this size may have its phones read in a child process."""
    return size >= MIN_RECORDS and workers.count() > 1


class Pending:
    """The child reading some fields; ``result()`` waits for their coded columns (None when it failed)."""

    def __init__(self, positions: list[int], process: subprocess.Popen, directory: tempfile.TemporaryDirectory):
        self.positions = positions
        self._process = process
        self._directory = directory
        # The child's peak memory (max RSS: a fresh process, nothing shared with this one), in kB.
        self.peak_kb = 0

    def result(self) -> dict[int, levels.CodedColumn] | None:
        try:
            if self._process.wait() != 0:
                return None
            with open(os.path.join(self._directory.name, "out"), "rb") as stream:
                found, self.peak_kb = pickle.load(stream)
            return {position: _decoded(*encoded) for position, encoded in found.items()}
        except Exception:
            return None
        finally:
            self._directory.cleanup()


def start(records: Sequence[Mapping[str, object]], schema: Sequence, region) -> Pending | None:
    """Start a child reading the schema's single-column phone fields of these records, or return None."""
    positions = [position for position, spec in enumerate(schema) if spec.type == c.PHONE and not spec.columns]
    if not positions or not allowed(len(records)):
        return None
    fields = []
    for position in positions:
        raws = _texts([record.get(schema[position].name) for record in records])
        if raws is None:
            return None
        fields.append((position, raws))
    regions = None
    if region is not None:
        regions = _texts([_region_of(region, record) for record in records])
        if regions is None:
            return None
    directory = tempfile.TemporaryDirectory(prefix="mergewise_read_")
    try:
        with open(os.path.join(directory.name, "in"), "wb") as stream:
            pickle.dump((fields, regions, sorted(normalize.active_placeholders()), normalize._default_region()),
                        stream, protocol=pickle.HIGHEST_PROTOCOL)
        env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
        env["PYTHONPATH"] = os.pathsep.join([_SOURCE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        process = subprocess.Popen([sys.executable, "-m", "dedup.engine.scoring.read_apart", directory.name],
                                   env=env, stdin=subprocess.DEVNULL)
    except Exception:
        directory.cleanup()
        return None
    return Pending(positions, process, directory)


def _region_of(region, record) -> str | None:
    try:
        return region(record) or None
    except Exception:
        return None


def _texts(values: list) -> tuple[str, np.ndarray] | None:
    """Return texts and Nones as one text (joined by NUL) and the Nones' mask, or None when a value is neither
    or holds a NUL."""
    missing = np.fromiter((value is None for value in values), dtype=bool, count=len(values))
    texts = ["" if value is None else value for value in values]
    if any(type(text) is not str for text in texts):
        return None
    joined = _SEPARATOR.join(texts)
    if joined.count(_SEPARATOR) != max(len(texts) - 1, 0):
        return None
    return joined, missing


def _untexts(encoded: tuple[str, np.ndarray]) -> list[str | None]:
    joined, missing = encoded
    texts: list[str | None] = joined.split(_SEPARATOR) if len(missing) else []
    for row in np.flatnonzero(missing).tolist():
        texts[row] = None
    return texts


def _child(directory: str) -> None:
    """Read the fields handed over in ``directory``/in and write their coded columns to ``directory``/out."""
    from django.conf import settings

    with open(os.path.join(directory, "in"), "rb") as stream:
        fields, regions, placeholders, default_region = pickle.load(stream)
    settings.configure(DEDUP_DEFAULT_REGION=default_region)
    normalize.use_placeholders(frozenset(placeholders))
    region_of = _untexts(regions) if regions is not None else None
    found = {}
    for position, encoded in fields:
        raws = _untexts(encoded)
        del encoded
        coder = coding.ColumnCoder(c.PHONE)
        for begin in range(0, len(raws), BATCH):
            coder.add_all(raws[begin:begin + BATCH], region_of[begin:begin + BATCH] if region_of else None)
        found[position] = _encoded(coder.coded())
    with open(os.path.join(directory, "out"), "wb") as stream:
        pickle.dump((found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), stream,
                    protocol=pickle.HIGHEST_PROTOCOL)


def _encoded(coded: levels.CodedColumn) -> tuple:
    """A phone column as codes, items per value, and the items' two strings joined."""
    counts = array("i", map(len, coded.values))
    items = [item for value in coded.values for item in value]
    return (coded.codes.tobytes(), counts.tobytes(), _SEPARATOR.join(item.e164 for item in items),
            _SEPARATOR.join(item.national for item in items))


def _decoded(codes: bytes, counts: bytes, e164: str, national: str) -> levels.CodedColumn:
    Phone = c.Phone
    items = [Phone(number, local) for number, local in zip(e164.split(_SEPARATOR), national.split(_SEPARATOR))]
    values = []
    start = 0
    for count in array("i", counts):
        values.append(tuple(items[start:start + count]))
        start += count
    return levels.CodedColumn(np.frombuffer(codes, dtype=np.int32).copy(), values)


if __name__ == "__main__":
    _child(sys.argv[1])
