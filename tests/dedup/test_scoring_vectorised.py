"""The scored matcher's bulk paths give exactly what the per-pair functions give: levels, exact agreements,
candidate pairs, EM patterns, term-frequency weights and national phone numbers (pure, no database)."""
import random
from collections import defaultdict

import numpy as np
import phonenumbers
import pytest

from dedup.engine import normalize
from dedup.engine.scoring import blocking, levels, matcher
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.model import FieldWeights, Model, distinct_patterns, pair_weights
from dedup.engine.scoring.shared import shared_values

FIRSTS = ["Ivan", "Ivana", "Иван", "Michael", "Mike", "Micheal", "Olga", "Olha", "Anna", "J.", "Petr", "Pyotr", ""]
LASTS = ["Petrov", "Petrova", "Petrvo", "Smith", "Smyth", "Smirnov", "Smirnova", "Kuznetsov", "Lee", "n/a"]
COMPANIES = ["Romashka LLC", "OOO Romashka", "Romaska", "Vector 1552", "Vector 1522", "Acme Inc", "", "Sever"]
PHONES = ["+7 912 345-67-89", "8 912 345 67 89", "+7 912 345-67-98", "+44 20 7946 0958", "020 7946 0958",
          "+39 06 1234 5678", "12345", ""]
EMAILS = ["ivan.petrov@gmail.com", "IvanPetrov+tag@gmail.com", "ivan@mail.ru", "Ivan@Mail.ru", "olga@yandex.ru", ""]
DATES = ["1980-04-09", "1980-09-04", "1980-04-08", "09.04.1980", "1981-04-09", "31/31/2020", ""]
IDS = ["AB123456", "AB123465", "AB12345", "XY999999", ""]
STREETS = ["12 Lenina street", "12 Lenin street", "Lenina 12", "5 Baker Street", ""]


def generated_records(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        records.append({
            "first_name": rng.choice(FIRSTS), "last_name": rng.choice(LASTS), "company": rng.choice(COMPANIES),
            # several values in one field (a customer's phones), and values typed alike (shared prepared objects)
            "phone": rng.sample(PHONES, rng.choice([1, 1, 2])), "email": rng.choice(EMAILS),
            "birth_date": rng.choice(DATES), "passport": rng.choice(IDS), "address": rng.choice(STREETS),
            "country": rng.choice(["RU", "GB", "IT"]),
        })
    return records


@pytest.fixture(scope="module")
def read():
    records = generated_records(400, seed=3)
    return matcher.read_records(records, matcher.infer_schema(records), region=matcher.infer_region(records))


def every_pair(size: int) -> np.ndarray:
    left, right = np.triu_indices(size, 1)
    return np.stack([left, right], axis=1).astype(np.int64)


def test_levels_of_distinct_value_pairs_equal_the_per_pair_function(read):
    pairs = every_pair(len(read))
    gammas = matcher.comparison_levels(read, pairs)
    assert len({spec.type for spec in read.schema}) >= 8
    for position, (column, field_type) in enumerate(zip(read.columns, read.types)):
        expected = [c.compare(field_type, column[a], column[b]) for a, b in pairs.tolist()]
        assert gammas[:, position].tolist() == expected, field_type
        # every level of the type's range comes up on some field, not only exact and different
        assert len(set(expected)) >= (2 if field_type == c.TEXT else 3), field_type


def test_exact_agreements_equal_the_per_pair_function(read):
    pairs = every_pair(len(read))
    gammas = matcher.comparison_levels(read, pairs)
    agreed = matcher.agreed_values(read, pairs, gammas)
    for position, (column, field_type) in enumerate(zip(read.columns, read.types)):
        expected = [c.exact_agreement(field_type, column[a], column[b]) if level == 0 else None
                    for (a, b), level in zip(pairs.tolist(), gammas[:, position].tolist())]
        assert list(agreed[position]) == expected, field_type
        assert [agreed[position][row] for row in range(0, len(pairs), 97)] == expected[::97]
        assert any(value is not None for value in expected)


def reference_candidate_pairs(columns, types, max_block):
    """The candidate pairs as the first version found them: dictionaries of token strings."""
    size = len(columns[0])
    tokens_of = [blocking.record_tokens(columns, types, row) for row in range(size)]
    blocks = defaultdict(list)
    for row, tokens in enumerate(tokens_of):
        for token in tokens:
            blocks[token].append(row)
    oversized = {token for token, rows in blocks.items() if len(rows) > max_block}
    refined = defaultdict(list)
    for row, tokens in enumerate(tokens_of):
        big = [token for token in tokens if token in oversized]
        for first in range(len(big)):
            for second in range(first + 1, len(big)):
                refined[(big[first], big[second])].append(row)
    found = set()
    for rows in [*blocks.values(), *refined.values()]:
        if 2 <= len(rows) <= max_block:
            found |= {(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]}
    # An oversized combined block of two values of fields that tell people apart, up to NEIGHBOUR_BLOCK_TIMES x
    # max_block records: sorted by each such field's spelling (a name's and a company's also spelled backwards),
    # the holders of each value (its first NEIGHBOUR_HOLDERS by row, or all of both values' when they make at most
    # NEIGHBOUR_PAIRS pairs) meet those of the next NEIGHBOURS values, and the holders of a value held by at most
    # SAME_VALUE_HOLDERS of the block meet each other.
    sortable = {str(position) for position, field_type in enumerate(types) if field_type in blocking._SORT_KEY}
    orders = [(position, field_type, False) for position, field_type in enumerate(types)
              if field_type in blocking._SORT_KEY]
    orders += [(position, field_type, True) for position, field_type in enumerate(types)
               if field_type in blocking.BACKWARDS]
    for (first, second), rows in refined.items():
        if not max_block < len(rows) <= blocking.NEIGHBOUR_BLOCK_TIMES * max_block:
            continue
        if 2 * len(rows) > min(len(blocks[first]), len(blocks[second])):
            continue
        if first.split(":")[0] not in sortable or second.split(":")[0] not in sortable:
            continue
        for position, field_type, backwards in orders:
            holders = defaultdict(list)
            for row in sorted(rows):
                if columns[position][row]:
                    spelled = blocking._SORT_KEY[field_type](columns[position][row][0])
                    holders[spelled[::-1] if backwards else spelled].append(row)
            values = sorted(holders)
            for value in values:
                if len(holders[value]) <= blocking.SAME_VALUE_HOLDERS:
                    found |= {(a, b) for i, a in enumerate(holders[value]) for b in holders[value][i + 1:]}
            for index, value in enumerate(values):
                for other_value in values[index + 1:index + 1 + blocking.NEIGHBOURS]:
                    # Few holders on both sides (at most NEIGHBOUR_PAIRS pairs): all of them meet.
                    few = len(holders[value]) * len(holders[other_value]) <= blocking.NEIGHBOUR_PAIRS
                    for row in holders[value][:None if few else blocking.NEIGHBOUR_HOLDERS]:
                        for other in holders[other_value][:None if few else blocking.NEIGHBOUR_HOLDERS]:
                            found.add((min(row, other), max(row, other)))
    return sorted(found)


@pytest.mark.parametrize("max_block", [3, 8, 24])
def test_candidate_pairs_by_integer_tokens_equal_the_dictionary_blocks(read, max_block):
    found = blocking.candidate_pairs(read.columns, read.types, max_block=max_block)
    expected = reference_candidate_pairs(read.columns, read.types, max_block)
    assert [tuple(pair) for pair in found.tolist()] == expected
    assert len(expected) > 100


def test_distinct_patterns_equal_numpy_unique_rows():
    rng = np.random.default_rng(1)
    gammas = rng.integers(-1, 7, (5000, 6)).astype(np.int8)
    patterns, counts = distinct_patterns(gammas)
    expected_patterns, expected_counts = np.unique(gammas, axis=0, return_counts=True)
    assert np.array_equal(patterns, expected_patterns)
    assert np.array_equal(counts, expected_counts)


def test_term_frequency_weights_from_coded_agreements_equal_those_from_lists(read):
    pairs = every_pair(len(read))
    gammas = matcher.comparison_levels(read, pairs)
    agreed = matcher.agreed_values(read, pairs, gammas)
    model = matcher.learn(read, pairs, gammas=gammas, agreed=agreed)
    model.fields[0].shared = {value: 3 for value in agreed[0].values[:2]}
    coded = pair_weights(model, gammas, agreed)
    listed = pair_weights(model, gammas, [list(column) for column in agreed])
    assert np.array_equal(coded, listed)
    # and the term frequencies move weights: not the plain table's
    assert not np.array_equal(coded, pair_weights(model, gammas, None))


def test_one_learn_on_coded_columns_equals_the_per_record_frequencies(read):
    # exact_share_and_tf weighed per distinct value gives what it gives per record
    from dedup.engine.scoring.model import exact_share_and_tf

    for position, (column, field_type) in enumerate(zip(read.columns, read.types)):
        per_record = exact_share_and_tf(
            [{c.exact_key(field_type, item) for item in value} if value else None for value in column])
        coded = read.coded(position)
        held = np.bincount(coded.codes[coded.codes >= 0], minlength=len(coded.values)).tolist()
        per_value = exact_share_and_tf([{c.exact_key(field_type, item) for item in value} for value in coded.values],
                                       held)
        assert per_value[0] == pytest.approx(per_record[0], rel=1e-12)
        assert per_value[1:] == per_record[1:]


@pytest.mark.parametrize("raw,region", [("+7 912 345-67-89", "RU"), ("020 7946 0958", "GB"),
                                        ("+39 06 1234 5678", "IT"), ("(202) 555-0123", "US"),
                                        ("8 812 123-45-67", "RU"), ("+49 30 123456", "DE")])
def test_national_number_equals_libphonenumber(raw, region):
    e164 = normalize.phone_e164(raw, region)
    assert e164 is not None
    assert c.national_number(e164) == str(phonenumbers.parse(e164).national_number)


def test_group_weights_of_small_model_unchanged_by_coding():
    # Two records typed alike share one prepared object: they agree exactly without being graded.
    records = [{"name": "Ivan Petrov", "phone": "+7 912 345-67-89"}, {"name": "Ivan Petrov", "phone": ""},
               {"name": "Ivan Petrvo", "phone": "8 912 345 67 89"}]
    read = matcher.read_records(records, matcher.infer_schema(records))
    assert read.columns[0][0] is read.columns[0][1]
    gammas = matcher.comparison_levels(read, every_pair(3))
    assert gammas.tolist() == [[0, c.MISSING], [2, 0], [2, c.MISSING]]
    model = Model([FieldWeights("name", c.PERSON_NAME, [0.7, 0.1, 0.1, 0.02, 0.02, 0.02, 0.04],
                                [0.001, 0.001, 0.002, 0.002, 0.004, 0.01, 0.98]),
                   FieldWeights("phone", c.PHONE, [0.85, 0.05, 0.02, 0.03, 0.05],
                                [0.001, 0.001, 0.002, 0.006, 0.99])], 0.01)
    weights, _probabilities = matcher.score(model, read, every_pair(3))
    assert weights[1] > weights[2]  # the phone agrees on the second pair only
    assert levels.code_column([None, (1,), ()]).codes.tolist() == [-1, 0, -1]


def test_shared_values_split_alike_pair_by_pair_and_in_bulk(read):
    pairs = every_pair(len(read))
    shared = shared_values(read)
    # a contact value several people give, on each contact field
    phone, email = read.types.index(c.PHONE), read.types.index(c.EMAIL)
    shared[phone] = shared[phone] or {"+79123456789": 2}
    shared[email] = shared[email] or {"ivan@mail.ru": 2}
    bulk = matcher.comparison_levels(read, pairs, shared=shared)
    one_by_one = np.concatenate([matcher.comparison_levels(read, pairs[start:start + matcher.FEW_PAIRS],
                                                           shared=shared)
                                 for start in range(0, len(pairs), matcher.FEW_PAIRS)])
    assert np.array_equal(bulk, one_by_one)
    split = c.LEVELS[c.PHONE].index(c.DIFFERENT_SHARED)
    assert (bulk[:, phone] == split).any()


def test_candidate_pairs_keep_the_first_tokens_of_a_record_with_too_many():
    rng = random.Random(4)
    words = ["Anna", "Maria", "Olga", "Irina", "Petrova", "Smirnova", "Ivanova", "Sidorova", "Kuznetsova", "Lee"]
    records = [{"name": " ".join(rng.sample(words, 8)), "passport": f"AB{rng.randint(1000, 1040)}77",
                "phone": rng.sample(PHONES[:5], 2), "address": rng.choice(STREETS)} for _ in range(300)]
    read = matcher.read_records(records, matcher.infer_schema(records))
    assert max(len(blocking.record_tokens(read.columns, read.types, row)) for row in range(300)) == \
        blocking.MAX_TOKENS_PER_RECORD
    found = blocking.candidate_pairs(read.columns, read.types, max_block=10)
    assert [tuple(pair) for pair in found.tolist()] == reference_candidate_pairs(read.columns, read.types, 10)


@pytest.mark.parametrize("batch", [7, matcher.READ_BATCH])
def test_read_records_in_batches_gives_each_record_its_prepared_values(monkeypatch, batch):
    records = generated_records(300, seed=5)
    for index in range(0, 300, 17):  # odd raw values: missing, placeholders, a non-text, a list of one
        records[index].update(first_name=None, company="n/a", email=["Ivan@Mail.ru"], birth_date=19800409,
                              country=None if index % 2 else "xx")
    schema, region = matcher.infer_schema(records), matcher.infer_region(records)
    monkeypatch.setattr(matcher, "READ_BATCH", batch)
    read_list = matcher.read_records(records, schema, region=region)
    read_stream = matcher.read_records(iter(records), schema, region=region)
    for position, spec in enumerate(schema):
        for row, record in enumerate(records):
            raw = spec.read(record)
            try:
                record_region = region(record) or None
            except Exception:
                record_region = None
            expected = c.prepare(spec.type, raw, region=record_region if spec.type == c.PHONE else None)
            assert read_list.columns[position][row] == expected, (spec.name, row)
            assert read_stream.columns[position][row] == expected, (spec.name, row)
        assert read_list.coded(position).codes.tolist() == read_stream.coded(position).codes.tolist()
