"""The bulk graders (scoring/graders.py) and the pruning of hopeless pairs give exactly what the per-pair paths
give (pure, no database)."""
import random

import numpy as np
import pytest

from dedup.engine.scoring import blocking, graders, levels, matcher
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.model import probability
from dedup.engine.scoring.shared import CONTACT_TYPES, SHARED_MAX_NAMES, shared_values

WORDS = ["Ivan", "Ivana", "Michael", "Mike", "Micheal", "Geoffrey", "Jeffrey", "Stephen", "Steven", "Olga", "Olha",
         "Petrov", "Petrova", "Petrvo", "Smirnov", "Smirnova", "Smirmov", "Kondratyev", "Kondratiev", "Sergeevich",
         "Иван", "Петров", "Ольга", "Смирнова", "Anna", "Lee", "Li", "Kuznetsov", "Kuznetsova", "Alexander", "Sasha",
         "Jonathan", "Jonathon", "Elizabeth", "Elisabeth", "Maria", "Marija", "Ng", "Abdurakhmanov"]


def generated_names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names = []
    for _ in range(count):
        words = rng.sample(WORDS, rng.choice([1, 2, 2, 2, 3, 3, 4]))
        if rng.random() < 0.15:  # an initial
            words[0] = words[0][0] + "."
        if rng.random() < 0.2:  # a typo: two neighbours swapped or a letter dropped
            word = words[-1]
            at = rng.randrange(max(len(word) - 1, 1))
            words[-1] = word[:at] + word[at + 1:at + 2] + word[at:at + 1] + word[at + 2:] if rng.random() < 0.5 \
                else word[:at] + word[at + 1:]
        names.append(" ".join(words))
    return names


def all_pairs_of_distinct(field_type: str, raw: list) -> tuple[list, np.ndarray, np.ndarray]:
    values = []
    for item in raw:
        prepared = c.prepare(field_type, item)
        if prepared is not None:
            values.append(prepared)
    left, right = np.triu_indices(len(values), 1)
    # both orders: the per-pair grader is not symmetric for names of equal length (the first is "short")
    return values, np.concatenate([left, right]).astype(np.int64), np.concatenate([right, left]).astype(np.int64)


def per_pair(field_type: str, values: list, codes_a: np.ndarray, codes_b: np.ndarray) -> list[int]:
    return [c.compare(field_type, values[a], values[b]) for a, b in zip(codes_a.tolist(), codes_b.tolist())]


def test_bulk_name_levels_equal_the_per_pair_grader():
    values, codes_a, codes_b = all_pairs_of_distinct(c.PERSON_NAME, generated_names(260, seed=5))
    bulk = graders.grade(c.PERSON_NAME, values, codes_a, codes_b)
    expected = per_pair(c.PERSON_NAME, values, codes_a, codes_b)
    assert bulk.tolist() == expected
    # every level of a name comes up, so each of the numpy shortcuts is checked against the grader
    assert set(expected) == set(range(len(c.LEVELS[c.PERSON_NAME])))


def test_bulk_name_levels_of_a_field_with_several_names_equal_the_per_pair_grader():
    names = generated_names(60, seed=6)
    raw = [names[i:i + 2] if i % 3 == 0 else names[i] for i in range(len(names))]
    values, codes_a, codes_b = all_pairs_of_distinct(c.PERSON_NAME, raw)
    assert any(len(value) == 2 for value in values)
    assert graders.grade(c.PERSON_NAME, values, codes_a, codes_b).tolist() == per_pair(
        c.PERSON_NAME, values, codes_a, codes_b)


@pytest.mark.parametrize("field_type, raw", [
    (c.PHONE, ["+7 912 345-67-89", "8 912 345 67 89", "+7 912 345-67-98", "+7 912 345-67-80", "+7 912 354-67-89",
               "+44 20 7946 0958", "020 7946 0958", "+39 06 1234 5678", "+1 202 555 0143", "+7 702 555 0143",
               "+7 912 345-67-8"]),
    (c.DATE, ["1980-04-09", "1980-09-04", "1980-04-08", "09.04.1980", "1981-04-09", "1980-04-90", "1908-04-09",
              "2001-12-01", "2001-01-12", "2001-12-10"]),
    (c.COMPANY_NAME, ["Romashka LLC", "OOO Romashka", "Romaska", "Romashka", "Vector 1552", "Vector 1522",
                      "Vcetor 1552", "Cedar Supply", "Cdear Suply", "Cedar Suply", "Supply Cedar", "Sever", "Sveer",
                      "Starlight", "Starlightredwood", "Rheintal", "Rheintal Bau", "Агрокомплекс 9506",
                      "Аргокомплекс 9506", "Agrokompleks 9506", "Acme Inc", "Acme", "Tekhnosfera Logistik",
                      "Tekhonsfera Logistik", "Tehnosfera Logistic"]),
    (c.EMAIL, ["ivan.petrov@gmail.com", "IvanPetrov+tag@gmail.com", "ivanpetrov@gmail.com", "ivan@mail.ru",
               "Ivan@Mail.ru", "olga@yandex.ru", "o.lga@yandex.ru"]),
])
def test_bulk_contact_and_date_levels_equal_the_per_pair_grader(field_type, raw):
    values, codes_a, codes_b = all_pairs_of_distinct(field_type, raw)
    expected = per_pair(field_type, values, codes_a, codes_b)
    assert graders.grade(field_type, values, codes_a, codes_b).tolist() == expected
    assert len(set(expected)) >= 3


def test_distinct_equals_numpy_unique():
    values = np.random.default_rng(2).integers(0, 1000, 5000)
    assert levels.distinct(values).tolist() == np.unique(values).tolist()
    assert levels.distinct(np.empty(0, dtype=np.int64)).tolist() == []


def crm_records(count: int, seed: int) -> list[dict]:
    """People at a few companies, many entered twice or three times with a typo, a variant or another phone."""
    rng = random.Random(seed)
    names = generated_names(count // 2, seed)
    companies = ["Romashka LLC", "Vector 1552", "Acme Inc", "Sever", "Cedar Supply"]
    records = []
    for person, name in enumerate(names):
        phone = f"+7 912 {person:03d}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
        company = rng.choice(companies)
        email = f"p{person}@mail.ru"
        birth = f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        for copy in range(rng.choice([1, 1, 2, 3])):
            records.append({
                "name": name if copy == 0 else rng.choice([name, name.replace("i", "y", 1), name + " Petrov"]),
                "company": company,
                "phone": rng.choice([phone, "+7 495 100-00-01", ""]) if copy else phone,
                "email": rng.choice([email, ""]), "birth_date": rng.choice([birth, ""]),
            })
    return records


@pytest.fixture(scope="module")
def learned():
    records = crm_records(900, seed=8)
    read = matcher.read_records(records, matcher.infer_schema(records))
    return read, matcher.find_groups(read).model


def test_pairs_left_out_as_hopeless_never_reach_it(learned):
    read, model = learned
    pairs = blocking.candidate_pairs(read.columns, read.types,
                                     coded=[read.coded(position) for position in range(len(read.schema))])
    kept, gammas, agreed = matcher._hopeful_pairs(model, read, pairs, matcher.DEFAULT_THRESHOLD)
    _weights, full = matcher.score(model, read, pairs)
    codes = pairs[:, 0] * len(read) + pairs[:, 1]
    is_kept = np.isin(codes, kept[:, 0] * len(read) + kept[:, 1])
    assert 0 < is_kept.sum() < len(pairs)  # some pairs are left out, some kept
    assert (full[~is_kept] < matcher.HOPELESS).all()
    # the kept pairs are scored as the full path scores them
    _weights, kept_probabilities = matcher.score(model, read, kept, gammas, agreed)
    assert np.allclose(kept_probabilities, full[is_kept], rtol=0, atol=1e-12)
    assert np.array_equal(gammas, matcher.comparison_levels(read, kept, shared=matcher.model_shared(model)))


def test_groups_with_a_known_model_equal_those_of_every_candidate_scored(learned):
    read, model = learned
    result = matcher.find_groups(read, model=model)
    pairs = blocking.candidate_pairs(read.columns, read.types,
                                     coded=[read.coded(position) for position in range(len(read.schema))])
    _weights, every = matcher.score(model, read, pairs)
    expected = matcher.group(model, read, pairs, every, matcher.DEFAULT_THRESHOLD)
    assert sorted(result.groups) == sorted(expected)
    assert any(len(group) >= 3 for group in expected)
    assert len(result.pairs) < len(pairs)


def test_hopeless_bound_holds_for_a_rare_exact_name():
    # a name agreeing exactly on a value seen nowhere else weighs more than the name field's exact level: the
    # bound must count the rarest value's weight, or that pair would be dropped
    records = crm_records(400, seed=9)
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.find_groups(read).model
    name = model.fields[read.types.index(c.PERSON_NAME)]
    assert matcher._best_weight(name) >= name.bayes_factor_log2(0)
    assert matcher._best_weight(name) >= max(name.bayes_factor_log2(0, value) for value in name.tf or [None])
    assert probability(model.prior_log2 + matcher._best_weight(name)) > probability(model.prior_log2)


def reference_shared_values(read) -> list[dict[str, int]]:
    """shared_values as first written: every record's contact keys and names gathered, people counted pair by pair."""
    identity = read.types.index(c.PERSON_NAME)
    different = len(c.LEVELS[c.PERSON_NAME]) - 1
    result = []
    for position, field_type in enumerate(read.types):
        if field_type not in CONTACT_TYPES:
            result.append({})
            continue
        holders: dict[str, dict] = {}
        for name_value, contact in zip(read.columns[identity], read.columns[position]):
            if not name_value or not contact:
                continue
            for item in contact:
                known = holders.setdefault(c.exact_key(field_type, item), {})
                if len(known) < SHARED_MAX_NAMES:
                    known.setdefault(name_value[0].key, name_value[0])
        shared = {}
        for key, known in holders.items():
            people = []
            for name in known.values():
                if not any(c.compare(c.PERSON_NAME, (name,), (other,)) < different - 1 for other in people):
                    people.append(name)
            if len(people) > 1:
                shared[key] = len(people)
        result.append(shared)
    return result


def test_shared_values_equal_the_record_by_record_count():
    records = crm_records(900, seed=10)
    for record in records[::7]:  # a family mailbox and a second phone on some records
        record["email"] = "family@mail.ru"
        record["phone"] = [record["phone"], "+7 495 100-00-02"]
    read = matcher.read_records(records, matcher.infer_schema(records))
    shared = shared_values(read)
    assert shared == reference_shared_values(read)
    assert shared[read.types.index(c.EMAIL)]["family@mail.ru"] > 2
    assert len(shared[read.types.index(c.PHONE)]) >= 2


def test_bulk_gendered_and_short_names_equal_the_per_pair_grader():
    # A feminine ending adds letters to the typed word (Petrov / Petrova, Иван / Ивана, across scripts too); a typo
    # of the last letter keeps its length however it folds (Smith / Smita fold to "smit" / "smita").
    raw = ["Ivan Petrov", "Ivan Petrova", "Иван Петрова", "Ivana Petrov", "Steven Smith", "Steven Smita",
           "John Ball", "John Bala", "Юлия Шилова", "Юлия Шиловв", "Юлия Шилов", "Anna Lee", "Anna Lke", "Anna Fee",
           "Иван Ким", "Иван Кип"]
    values, codes_a, codes_b = all_pairs_of_distinct(c.PERSON_NAME, raw)
    bulk = graders.grade(c.PERSON_NAME, values, codes_a, codes_b)
    assert bulk.tolist() == per_pair(c.PERSON_NAME, values, codes_a, codes_b)
    level = {(raw[a], raw[b]): c.LEVELS[c.PERSON_NAME][found]
             for a, b, found in zip(codes_a.tolist(), codes_b.tolist(), bulk.tolist())}
    assert level[("Ivan Petrov", "Ivan Petrova")] == level[("Ivan Petrov", "Иван Петрова")] == "different"
    assert level[("Ivan Petrov", "Ivana Petrov")] == level[("Юлия Шилова", "Юлия Шилов")] == "different"
    assert level[("Steven Smith", "Steven Smita")] == level[("John Ball", "John Bala")] == "fuzzy_high"
    assert level[("Юлия Шилова", "Юлия Шиловв")] == "fuzzy_high"
    # a three-letter word one letter apart past the first (comparisons.short_typo)
    assert level[("Anna Lee", "Anna Lke")] == level[("Иван Ким", "Иван Кип")] == "fuzzy_high"
    assert level[("Anna Lee", "Anna Fee")] != "fuzzy_high"
