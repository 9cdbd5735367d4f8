"""Candidate pairs from several blocking keys at once, with bounded blocks that are refined, never dropped blindly.

Every record gets a few tokens per field (a surname's variant group and its Metaphone code, an E.164 phone and
its national number, a folded email, a date with day and month unordered, a company name
without legal form ...). Two records are a candidate pair when they share a token whose block holds at most
``max_block`` records. A token held by more records (a common first name, an office switchboard, a big
company) stops being a key on its own, but its holders are re-blocked on that token *plus* each of their other
oversized tokens ("Ivan" + "Smith", a big company + its switchboard); a pair sharing it and a small token
already meets in the small token's block. So pairs that also agree on another field still meet, while the
10,000 Ivans are never compared with each other.

A combined block still larger than ``max_block`` (at 1,000,000 customers: 30 to 100 namesakes sharing a first
and last name, a first name at a big company) is not dropped but sorted by each field's value in turn (a company
also by its spelling backwards), and the holders of each value meet those of the ``NEIGHBOURS`` next values
(sorted-neighbourhood blocking inside the block, counted in distinct values): a namesake whose company has a
typo ("Vector" / "Vcetor"; "Agrokompleks 9506" / "Argokompleks 9506" backwards), a surname typo at a big company
sort next to their true partner and meet, while the block's members are not all compared with each other (which
at that size would triple the candidate pairs). Such a block is sorted only when its two tokens are
two values of fields that tell people apart (a name and a surname, a name and a company: not a first name's
variant group and its phonetic key, which are one value; not a name and a country) and it holds at most
``NEIGHBOUR_BLOCK_TIMES`` × ``max_block`` records (past that, a name shared by hundreds: dropped as before).
"""
from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import graders, levels

# Measured on Febrl 3 (5,000 records): 24 keeps every true pair among 80k candidates, 60 doubles the pairs.
DEFAULT_MAX_BLOCK = 24
MAX_TOKENS_PER_RECORD = 24
# Inside an oversized combined block sorted by one field, the holders of each value meet those of this many next
# values.
NEIGHBOURS = 2
# Oversized combined blocks up to this many times ``max_block`` records are sorted field by field (sorted
# neighbourhood): 480 records at the default, 30 to 100 namesakes of a common first and last name at 1,000,000
# customers; past it the block is one value in two tokens, or a name shared by hundreds.
NEIGHBOUR_BLOCK_TIMES = 20
# Inside a sorted block, a value held by more members than this meets its neighbours' values with its first ones
# only (namesakes at one big company: a few each).
NEIGHBOUR_HOLDERS = 2
# Inside a sorted block, two neighbouring values meet holder by holder when their holders make at most this many
# pairs (a value held once next to one held by up to six); 0: only the first NEIGHBOUR_HOLDERS of each.
NEIGHBOUR_PAIRS = 6
# Inside a sorted block, the holders of one value meet each other when they are at most this many (two Stephen Smiths
# in the block of the Stephens at a big company: the block of their name is too big to compare whole; four Rebecca
# Johnsons at one "Harbor", one of them a "Becky": at 3, 8 such name variants at 1,000,000 CRM records met no
# partner, for 640 more candidate pairs at 5); 0: never.
SAME_VALUE_HOLDERS = 5


def field_tokens(field_type: str, prepared: tuple | None) -> set[str]:
    """Return a prepared field's blocking tokens (without the field prefix)."""
    if not prepared:
        return set()
    tokens: set[str] = set()
    for item in prepared:
        if field_type == c.PERSON_NAME:
            for word, groups in zip(item.words, item.groups):
                tokens.update(_word_tokens(word, groups))
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
                    max_block: int = DEFAULT_MAX_BLOCK,
                    coded: Sequence[levels.CodedColumn] | None = None) -> np.ndarray:
    """Return the candidate pairs (an array of [left, right] row numbers, left < right, no repeats).

    Tokens are coded as integers (each distinct prepared value's tokens found once), and the blocks are runs of
    one token after a numpy sort: no dictionary of strings to lists of rows. ``coded``: the columns already
    coded (levels.code_column), as the matcher's Records keep them.
    """
    size = len(columns[0]) if columns else 0
    if size < 2:
        return np.empty((0, 2), dtype=np.int64)
    if coded is None:
        coded = [levels.code_column(column) for column in columns]
    rows, tokens, firsts = _coded_tokens(coded, types, size)
    if not len(tokens):
        return np.empty((0, 2), dtype=np.int64)
    counts = np.bincount(tokens)
    chunks = [_block_pairs_sorted(tokens, rows, counts, max_block, size)]
    # A pair sharing an oversized token and a small one already meets in the small one's block: only pairs of
    # oversized tokens need a combined block, one per pair of a record's oversized tokens (in record order).
    # Every record's tokens are not needed past this (at 1,000,000 records 130 MB, held during the combined
    # blocks' sort otherwise).
    big = counts[tokens] > max_block
    big_rows, big_tokens = rows[big], tokens[big]
    del rows, tokens, big
    chunks.append(_combined_block_pairs(big_rows, big_tokens, counts, max_block, size, firsts=firsts,
                                        sortable=np.array([field_type in _SORT_KEY for field_type in types] + [False]),
                                        order=lambda rows: _field_orders(coded, types, rows)))
    codes = levels.distinct(np.concatenate(chunks))
    if not len(codes):
        return np.empty((0, 2), dtype=np.int64)
    return np.stack([codes // size, codes % size], axis=1)


def _combined_block_pairs(big_rows: np.ndarray, big_tokens: np.ndarray, counts: np.ndarray, max_block: int,
                          size: int, *, firsts: np.ndarray | None = None, sortable: np.ndarray | None = None,
                          order=None) -> np.ndarray:
    """Return the pairs of the combined blocks: one per pair of a record's oversized tokens (in record order),
    ``big_rows`` and ``big_tokens`` being the (row, token) of every token held by more than ``max_block`` rows.

    Only the combined keys held by 2 to ``max_block`` records are kept, by one sort of the keys: at
    1,000,000 records most records hold several oversized tokens (a common first name, its phonetic key) and
    the keys are tens of millions, nearly all of them in blocks too big or of one record.
    """
    if not len(big_rows):
        return np.empty(0, dtype=np.int64)
    per_row = np.bincount(big_rows, minlength=size)
    start_of = np.concatenate([[0], np.cumsum(per_row)])[:-1]
    # The keys of each number of oversized tokens per record written straight into one array (tens of millions
    # at 1,000,000 records: a list of parts joined afterwards held them twice).
    held_tokens = np.bincount(per_row)
    total = int(sum(int(held_tokens[width]) * (width * (width - 1) // 2) for width in range(2, len(held_tokens))))
    if not total:
        return np.empty(0, dtype=np.int64)
    combined = np.empty(total, dtype=np.int64)
    combined_rows = np.empty(total, dtype=np.int32)
    filled = 0
    for width in range(2, len(held_tokens)):
        if not held_tokens[width]:
            continue
        holders = np.flatnonzero(per_row == width)
        matrix = big_tokens[start_of[holders][:, None] + np.arange(width)].astype(np.int64)
        first, second = np.triu_indices(width, 1)
        end = filled + len(holders) * len(first)
        part = combined[filled:end].reshape(len(holders), len(first))
        np.multiply(matrix[:, first], len(counts), out=part)
        part += matrix[:, second]
        combined_rows[filled:end] = np.repeat(holders.astype(np.int32), len(first))
        filled = end
        del matrix, part
    # Each key's distinct key (one sort, graders.distinct_inverse): the blocks' members are then picked by the
    # key's index, not looked up again among the wanted keys (two binary searches over tens of millions).
    # The combined keys are not needed after this: their array is the sort's (overwrite).
    distinct, inverse = graders.distinct_inverse(combined, len(counts) ** 2, overwrite=True)
    held = np.bincount(inverse, minlength=len(distinct))
    wanted = (held >= 2) & (held <= max_block)
    oversized = np.zeros(len(distinct), dtype=bool)
    if order is not None and firsts is not None and sortable is not None:
        # Sorted only when the two tokens are two values (first name and surname, a name and a company): a
        # combined block holding most of its smaller token's holders is one value in two spellings. And only
        # when both are of fields whose values tell people apart (a name and a company, not a name and a
        # country: all Michaels in the US is no sub-block).
        first, second = distinct // len(counts), distinct % len(counts)
        either = np.minimum(counts[first], counts[second])
        keyed = (sortable[np.searchsorted(firsts, first, side="right") - 1]
                 & sortable[np.searchsorted(firsts, second, side="right") - 1])
        oversized = ((held > max_block) & (held <= NEIGHBOUR_BLOCK_TIMES * max_block) & (held * 2 <= either)
                     & keyed)
        del either, first, second, keyed
    del distinct, held, combined
    chunks = [np.empty(0, dtype=np.int64)]
    for chosen, pairs_of in ((wanted, "blocks"), (oversized, "sorted")):
        if not chosen.any():
            continue
        keep = chosen[inverse]
        block = (np.cumsum(chosen) - 1)[inverse[keep]]  # the key's place among the chosen keys
        members = combined_rows[keep]
        del keep
        if pairs_of == "blocks":
            chunks.append(_block_pairs_sorted(block, members, np.bincount(block), max_block, size))
        else:
            chunks.append(_neighbour_pairs(block, members, order(members), size))
    return np.concatenate(chunks)


def _neighbour_pairs(blocks: np.ndarray, rows: np.ndarray, ranks: Sequence[np.ndarray | None],
                     size: int) -> np.ndarray:
    """Return the pairs of each block's members whose values of one field are within ``NEIGHBOURS`` distinct values
    of each other in that field's order (``ranks[field][row]``: the row's value's place in the order, -1 when it
    has none), field by field.

    What this finds is two members that almost agree (one letter apart in a company, a surname typo) inside a
    block too big to compare whole. Neighbours are counted in distinct values, not in members: when two namesakes
    work at "Orion" and the third's copy is at "Oroin", the copy meets both whatever their order (counted in
    members, it met the nearest only when the namesakes' rows came first). A value held by more than
    ``NEIGHBOUR_HOLDERS`` members of a block takes part with its first ones only. Two members that agree exactly
    (equal places) meet when their value has at most ``SAME_VALUE_HOLDERS`` holders in the block (two Stephen
    Smiths among the Stephens at a big company), never in a block of one value (60 namesakes sorted by name)."""
    chunks = [np.empty(0, dtype=np.int64)]
    for rank in ranks:
        if rank is None:
            continue
        held = rank[rows] >= 0
        block, row = blocks[held].astype(np.int64), rows[held].astype(np.int64)
        if not len(row):
            continue
        block, value, row = _sorted_triples(block, rank[row], row, size)  # by block, the field's order, row
        # Runs of one value in one block; each member's place in its run.
        new_run = np.concatenate([[True], (block[1:] != block[:-1]) | (value[1:] != value[:-1])])
        run_start = np.flatnonzero(new_run)
        run_of = np.cumsum(new_run) - 1
        held_by = np.diff(np.append(run_start, len(row)))  # each value's holders in the block
        run_length = np.minimum(held_by, NEIGHBOUR_HOLDERS)
        member = np.flatnonzero(np.arange(len(row)) - run_start[run_of] < NEIGHBOUR_HOLDERS)
        if SAME_VALUE_HOLDERS >= 2:  # the few holders of one value meet each other (step 0)
            few = np.flatnonzero(held_by <= SAME_VALUE_HOLDERS)
            for offset in range(1, SAME_VALUE_HOLDERS):
                inside = few[held_by[few] > offset]
                first = np.repeat(run_start[inside], held_by[inside] - offset) + _within(held_by[inside] - offset)
                left, right = row[first], row[first + offset]
                chunks.append(np.minimum(left, right) * size + np.maximum(left, right))
        # Two neighbouring values held by few members all meet (a typo held once next to a company three namesakes
        # hold: the first two of those would be the wrong ones); past NEIGHBOUR_PAIRS, the first ones only.
        everyone = np.arange(len(row)) if NEIGHBOUR_PAIRS else member
        within_run = everyone - run_start[run_of[everyone]]
        for step in range(1, NEIGHBOURS + 1):
            partner_run = run_of[everyone] + step
            valid = partner_run < len(run_start)
            left_members, partner_run, place = everyone[valid], partner_run[valid], within_run[valid]
            same = block[run_start[partner_run]] == block[left_members]
            left_members, partner_run, place = left_members[same], partner_run[same], place[same]
            few_pairs = held_by[run_of[left_members]] * held_by[partner_run] <= NEIGHBOUR_PAIRS
            count = np.where(few_pairs, held_by[partner_run],
                             np.where(place < NEIGHBOUR_HOLDERS, run_length[partner_run], 0))
            left = np.repeat(row[left_members], count)
            right = row[np.repeat(run_start[partner_run], count) + _within(count)]
            chunks.append(np.minimum(left, right) * size + np.maximum(left, right))
    return np.concatenate(chunks)


def _sorted_triples(block: np.ndarray, value: np.ndarray, row: np.ndarray,
                    size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (block, value, row) triples (non-negative, row below ``size``) sorted by block, then value, then
    row: one sort of the three packed in an int64 when they fit (at 1,000,000 records a third of the time of
    lexsort's three stable argsorts and the gathers after them), else lexsort."""
    blocks, values = int(block.max()) + 1, int(value.max()) + 1
    if blocks * values * size < 2**63:
        packed = np.sort((block * values + value) * size + row)
        row, rest = packed % size, packed // size
        return rest // values, rest % values, row
    order = np.lexsort((row, value, block))
    return block[order], value[order], row[order]


def _within(count: np.ndarray) -> np.ndarray:
    """Return 0 .. count[i] - 1 for each i in turn, concatenated."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)


def _value_order(column: levels.CodedColumn, field_type: str, rows: np.ndarray | None = None, *,
                 backwards: bool = False) -> np.ndarray | None:
    """Return each row's place in the order of its field's values (a name or company by its folded words, a phone
    by its number, ...; -1 when missing), or None for a field whose values say nothing of nearness (a country,
    a number: sorted neighbours there are strangers). ``rows``: only these rows' places are read (the others
    come back -1), so only their values are spelled and sorted (at 1,000,000 records the members of the sorted
    blocks hold a few percent of the values; sorting all of them as Python strings took 6 s). ``backwards``: the
    order of the values spelled backwards (a typo near the start of a name keeps its end in place)."""
    if field_type not in _SORT_KEY or not column.values:
        return None
    key = _SORT_KEY[field_type]
    codes = column.codes if rows is None else column.codes[rows]
    used = levels.distinct(codes[codes >= 0]).tolist()
    values = column.values
    spelled = [key(values[code][0]) for code in used]
    if backwards:
        spelled = [text[::-1] for text in spelled]
    place = {text: rank for rank, text in enumerate(sorted(set(spelled)))}
    ranks = np.full(len(values) + 1, -1, dtype=np.int64)  # the last entry: a missing value's code -1
    ranks[used] = [place[text] for text in spelled]
    return ranks[column.codes]


def _field_orders(coded: Sequence[levels.CodedColumn], types: Sequence[str],
                  rows: np.ndarray) -> list[np.ndarray | None]:
    """Return the orders the sorted blocks' members are paired by: every field's values (``_value_order``), and a
    company's spelled backwards too (``BACKWARDS``: a typo in the first letters sorts a company away from its own
    spelling among the namesakes' companies, "Agrokompleks 9506" / "Argokompleks 9506", "Tekhnosfera Logistik" /
    "Tekhonsfera Logistik", but not backwards)."""
    orders = [_value_order(column, field_type, rows) for column, field_type in zip(coded, types)]
    orders += [_value_order(column, field_type, rows, backwards=True)
               for column, field_type in zip(coded, types) if field_type in BACKWARDS]
    return orders


# The field types whose sorted blocks are also paired in the order of their values spelled backwards.
BACKWARDS = frozenset({c.COMPANY_NAME})


# How a field's value is spelled for the sorted neighbourhood: the form whose neighbours in alphabetical order are
# its near misses (a typo past the first letter keeps a name or company among its neighbours).
_SORT_KEY = {
    c.PERSON_NAME: lambda item: item.key,
    c.COMPANY_NAME: lambda item: item.key,
    c.EMAIL: lambda item: item.folded,
    c.PHONE: lambda item: item.national,
    c.DATE: lambda item: "%04d-%02d-%02d" % tuple(item),
    c.IDENTIFIER: str,
    c.ADDRESS: str,
}


def _coded_tokens(coded: Sequence[levels.CodedColumn], types: Sequence[str],
                  size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (row, token code) of every record's tokens (record_tokens' order and cap), rows ascending, and each
    field's first token code (a field's codes are consecutive; one more entry: the number of codes).

    Each distinct value's tokens are found and coded once; the records' token lists are then laid out by numpy
    (a value's tokens repeated for every record holding it, fields in schema order, capped per record).
    """
    rows_of, tokens_of = [], []
    offset = 0  # each field's tokens coded after the fields before it
    firsts = []
    for column, field_type in zip(coded, types):
        firsts.append(offset)
        # A distinct value's tokens as 64-bit hashes in a flat array, then coded per field: no dictionary of
        # millions of token strings (most of blocking's memory at 1,000,000 records). Two tokens of one field
        # sharing a hash (about 1 in 10^12 at that size) only make one block, whose pairs are scored as any.
        flat, lengths = array("q"), array("q")
        for tokens in _value_tokens(field_type, column.values):
            flat.extend(map(hash, tokens))
            lengths.append(len(tokens))
        if not flat:
            continue
        distinct, value_tokens = np.unique(np.frombuffer(flat, dtype=np.int64), return_inverse=True)
        value_tokens = (value_tokens + offset).astype(np.int32)
        offset += len(distinct)
        del flat, distinct
        length = np.frombuffer(lengths, dtype=np.int64)
        start = np.cumsum(length) - length
        present = np.flatnonzero(column.codes >= 0)
        per_row = length[column.codes[present]]
        total = int(per_row.sum())
        within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        rows_of.append(np.repeat(present.astype(np.int32), per_row))
        tokens_of.append(value_tokens[np.repeat(start[column.codes[present]], per_row) + within])
        del within
    firsts = np.array(firsts + [offset], dtype=np.int64)
    if not rows_of:
        return np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32), firsts
    # Laid out field after field, each field's rows ascending and a value's tokens in order: a stable sort by row
    # alone gives (row, field, token) order.
    rows = np.concatenate(rows_of)
    del rows_of
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    tokens = np.concatenate(tokens_of)[order]
    del tokens_of, order
    if np.bincount(rows).max() > MAX_TOKENS_PER_RECORD:
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = rank < MAX_TOKENS_PER_RECORD
        rows, tokens = rows[keep], tokens[keep]
    return rows, tokens, firsts


def _value_tokens(field_type: str, values: Sequence[tuple]) -> list[list[str]]:
    """Return each distinct value's blocking tokens, sorted (field_tokens): a phone, an email or a date of one
    value spelled out directly, a name's words' tokens found once per word (a first name is in thousands of names)."""
    result = []
    by_word: dict[str, tuple[str, ...]] = {}
    for value in values:
        if len(value) != 1 or field_type not in (c.PHONE, c.EMAIL, c.PERSON_NAME):
            result.append(sorted(field_tokens(field_type, value)))
        elif field_type == c.PHONE:  # "e+7..." sorts before "n7..."
            result.append(["e" + value[0].e164, "n" + value[0].national])
        elif field_type == c.EMAIL:
            result.append(["e" + value[0].folded])
        else:
            tokens: set[str] = set()
            for word, groups in zip(value[0].words, value[0].groups):
                found = by_word.get(word)
                if found is None:
                    found = by_word[word] = _word_tokens(word, groups)
                tokens.update(found)
            result.append(sorted(tokens))
    return result


def _word_tokens(word: str, groups: frozenset[int]) -> tuple[str, ...]:
    """Return a name word's tokens: its variant group (or the word) and its phonetic key; none for an initial."""
    if len(word) < 2:
        return ()
    return ("g%d" % min(groups) if groups else "w" + word, "p" + c.phonetic_key(word))


def _block_pairs_sorted(tokens: np.ndarray, rows: np.ndarray, counts: np.ndarray, max_block: int,
                        size: int) -> np.ndarray:
    """Return every pair of rows sharing a token held by 2 to ``max_block`` rows, each as low * size + high.
    A row holds a token once, so sorting token * size + row orders the rows by token, then row."""
    sorted_rows = np.sort(tokens.astype(np.int64) * size + rows) % size
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    chunks = [np.empty(0, dtype=np.int64)]
    for width in range(2, max_block + 1):
        blocks = np.flatnonzero(counts == width)
        if not len(blocks):
            continue
        matrix = sorted_rows[starts[blocks][:, None] + np.arange(width)]
        first, second = np.triu_indices(width, 1)
        left, right = matrix[:, first].ravel(), matrix[:, second].ravel()
        chunks.append(np.minimum(left, right) * size + np.maximum(left, right))
    return np.concatenate(chunks)
