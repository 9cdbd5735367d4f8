"""The Fellegi–Sunter model of scored matching: learning m and u, term frequencies, labels, blocking, groups, "why"."""
import random

import numpy as np
import pytest
from django.utils import translation

from dedup.engine.scoring import blocking, clustering, matcher
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.model import (
    FieldWeights,
    Model,
    expectation_maximisation,
    fold_labels,
    initial_m,
    pair_weights,
    probability,
)

# Two fields of three levels each (exact, fuzzy, different), known m, u and share of matches.
TRUE_M = [[0.85, 0.10, 0.05], [0.70, 0.20, 0.10]]
TRUE_U = [[0.01, 0.04, 0.95], [0.05, 0.15, 0.80]]
TRUE_PRIOR = 0.2


def generated_levels(pairs: int, seed: int = 3) -> np.ndarray:
    generator = np.random.default_rng(seed)
    is_match = generator.random(pairs) < TRUE_PRIOR
    columns = []
    for m, u in zip(TRUE_M, TRUE_U):
        from_m = generator.choice(3, size=pairs, p=m)
        from_u = generator.choice(3, size=pairs, p=u)
        columns.append(np.where(is_match, from_m, from_u))
    return np.stack(columns, axis=1).astype(np.int8)


def test_expectation_maximisation_recovers_known_m_and_prior():
    gammas = generated_levels(60_000)
    # Identifiers have three levels (exact, one character, different); EM starts from a flat m.
    fields = [FieldWeights(f"f{index}", c.IDENTIFIER, [0.5, 0.3, 0.2], list(u)) for index, u in enumerate(TRUE_U)]

    prior, iterations = expectation_maximisation(gammas, fields, prior=0.05)

    assert prior == pytest.approx(TRUE_PRIOR, abs=0.02)
    for weights, m in zip(fields, TRUE_M):
        assert weights.m == pytest.approx(m, abs=0.03)
    assert iterations > 1


def test_learn_recovers_m_of_planted_duplicates():
    # Given people with a name, a phone and a birth date, and a copy of every fifth with the phone retyped
    rng = random.Random(5)
    records, truth = [], []
    surnames = ["Smirnov", "Ivanov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novikov", "Morozov",
                "Volkov", "Baker", "Walker", "Wright", "Green", "Hill", "Adams", "Nelson", "Carter", "Roberts"]
    firsts = ["Anna", "Olga", "Ivan", "Petr", "John", "Mary", "Kate", "Paul", "Mark", "Emma", "Oleg", "Irina"]
    for person in range(1500):
        born = f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        record = {"name": f"{rng.choice(firsts)} {rng.choice(surnames)}{person % 37}",
                  "phone": f"+7912{person:07d}", "birth_date": born}
        records.append(record)
        truth.append(person)
        if person % 5 == 0:
            records.append(dict(record, phone=f"8 912 {person:07d}"))
            truth.append(person)
    schema = matcher.infer_schema(records)
    read = matcher.read_records(records, schema)

    # When the model is learned without labels
    model = matcher.learn(read)

    # Then duplicates agree exactly on every field (m of "exact" near 1), strangers rarely (u near 0)
    for name in ("name", "phone", "birth_date"):
        weights = model.field(name)
        assert weights.m[0] > 0.9, (name, weights.m)
        assert weights.u[0] < 0.01, (name, weights.u)
    result = matcher.find_groups(read, model=model)
    found = matcher.group_pairs(result.groups)
    true_pairs = {(a, b) for a in range(len(truth)) for b in range(a + 1, min(a + 3, len(truth)))
                  if truth[a] == truth[b]}
    assert found == true_pairs


def test_term_frequency_rare_value_counts_more():
    weights = FieldWeights("last_name", c.PERSON_NAME, initial_m(c.PERSON_NAME), [0.01] + [0.99 / 6] * 6)
    weights.tf = {"ivanov": 0.05, "zaitsev": 0.0002}
    weights.tf_floor = 0.0001
    common = weights.bayes_factor_log2(0, "ivanov")
    rare = weights.bayes_factor_log2(0, "zaitsev")
    average = weights.bayes_factor_log2(0)
    assert rare > average > common


def test_pair_weights_apply_term_frequencies():
    weights = FieldWeights("name", c.TEXT, [0.9, 0.05, 0.03, 0.02], [0.01, 0.02, 0.07, 0.9])
    weights.tf = {"ivanov": 0.2}
    weights.tf_floor = 0.001
    model = Model([weights], prior=0.1)
    gammas = np.array([[0], [0]], dtype=np.int8)
    scores = pair_weights(model, gammas, [["ivanov", "zaitsev"]])
    assert scores[1] > scores[0]


def test_shared_contact_value_weighs_little():
    # A phone held by ten different people (a switchboard) says "same office", not "same person".
    weights = FieldWeights("phone", c.PHONE, [0.9, 0.04, 0.03, 0.03], [0.0001, 0.0001, 0.0001, 0.9997])
    weights.shared = {"+74951234567": 10}
    assert weights.bayes_factor_log2(0, "+74951234567") < 0.1
    assert weights.bayes_factor_log2(0, "+79123456789") > 10
    # Unless the two records carry one name: the office is told apart by the name, and these agree.
    assert weights.bayes_factor_log2(0, "+74951234567", names_agree=True) > 10


def test_find_groups_family_mailbox_keeps_a_typo_duplicate_and_leaves_the_relative_out():
    # A family writing from one mailbox: Olga entered twice (once with a typo in her surname), her husband once.
    scenario = [
        {"name": "Olga Smirnova", "phone": "", "email": "smirnovy@mail.ru"},
        {"name": "Olga Smirnvoa", "phone": "", "email": "smirnovy@mail.ru"},
        {"name": "Igor Smirnov", "phone": "", "email": "smirnovy@mail.ru"},
    ]
    records = scenario + background(400)
    read = matcher.read_records(records, matcher.infer_schema(records))
    result = matcher.find_groups(read)
    assert result.model.field("email").shared["smirnovy@mail.ru"] == 2
    assert [0, 1] in result.groups
    assert not any(2 in group for group in result.groups)


def test_fold_labels_merge_raises_m_and_not_duplicate_raises_u():
    weights = FieldWeights("company", c.COMPANY_NAME, [0.7, 0.1, 0.1, 0.1], [0.01, 0.01, 0.03, 0.95])
    model = Model([weights], prior=0.1)
    before = weights.bayes_factor_log2(1)
    # Managers merged pairs whose company differed by a typo (level 1): a typo in a company is a match sign.
    fold_labels(model, np.array([[1]] * 30, dtype=np.int8), [True] * 30)
    after_merges = weights.bayes_factor_log2(1)
    assert after_merges > before
    # Then they said "not a duplicate" of many pairs with a typo'd company: the level weighs less again.
    fold_labels(model, np.array([[1]] * 60, dtype=np.int8), [False] * 60)
    assert weights.bayes_factor_log2(1) < after_merges


def test_average_linkage_never_chains_through_one_weak_link():
    # Two clusters of two, joined by one strong pair between them: union-find would make one group of four.
    probabilities = {(1, 2): 0.99, (3, 4): 0.99, (2, 3): 0.95}
    assert clustering.components([(1, 2), (3, 4), (2, 3)]) == [[1, 2, 3, 4]]
    assert clustering.average_linkage([1, 2, 3, 4], probabilities, 0.9) == [[1, 2], [3, 4]]


def test_average_linkage_keeps_a_group_whose_members_all_link():
    probabilities = {(1, 2): 0.99, (2, 3): 0.99, (1, 3): 0.95, (3, 4): 0.99, (1, 4): 0.9, (2, 4): 0.92}
    assert clustering.average_linkage([1, 2, 3, 4], probabilities, 0.9) == [[1, 2, 3, 4]]


FIRSTS = ["Anna", "Olga", "Ivan", "Petr", "John", "Mary", "Kate", "Paul", "Mark", "Emma", "Oleg", "Irina", "Denis"]
SURNAMES = ["Sokolov", "Lebedev", "Kozlov", "Novikov", "Morozov", "Volkov", "Baker", "Walker", "Wright", "Green",
            "Hill", "Adams", "Nelson", "Carter", "Roberts", "Orlov", "Belov", "Titov", "Gusev", "Frolov"]


def background(people: int, seed: int = 11) -> list[dict]:
    """Return a base of people with a phone and an email, every fourth entered twice with one of its contacts
    (every twelfth with a surname typo too)."""
    rng = random.Random(seed)
    names = [f"{first} {surname}" for first in FIRSTS for surname in SURNAMES]
    rng.shuffle(names)
    records = []
    for index in range(min(people, len(names))):
        record = {"name": names[index], "phone": f"+7 903 {index:07d}",
                  "email": f"client{index}@mail.ru"}
        records.append(record)
        if index % 4 == 0:
            copy = dict(record)
            if index % 12 == 0:
                copy["name"] = record["name"][:-2] + record["name"][-1] + record["name"][-2]
            copy["phone" if index % 8 else "email"] = ""
            records.append(copy)
    return records


def test_find_groups_shared_switchboard_does_not_join_two_people():
    # Two people at one office, each entered twice, all four giving the switchboard; one weak link between them.
    scenario = [
        {"name": "Olga Smirnova", "phone": "+7 495 100-00-01", "email": "olga.smirnova@mail.ru"},
        {"name": "Olga Smirnvoa", "phone": "+7 495 100-00-01", "email": "olga.smirnova@mail.ru"},
        {"name": "Petr Kuznetsov", "phone": "+7 495 100-00-01", "email": "petr.k@yandex.ru"},
        {"name": "Petr Kuznetsov", "phone": "+7 495 100-00-01", "email": "petr.k@yandex.ru"},
    ]
    records = scenario + background(400)
    read = matcher.read_records(records, matcher.infer_schema(records))
    result = matcher.find_groups(read)
    assert [2, 3] in result.groups
    assert not any({0, 1} & set(group) and {2, 3} & set(group) for group in result.groups)
    # Spellings of one name are one person: the switchboard is shared by two people, not three.
    assert result.model.field("phone").shared["+74951000001"] == 2


def test_explain_names_each_field_in_english_and_russian():
    records = [{"first_name": "Michael", "last_name": "Smith", "phone": "+7 912 345-67-89",
                "email": "m.smith@mail.ru"},
               {"first_name": "Smith", "last_name": "Micheal", "phone": "8 912 345 67 89", "email": ""}]
    for record in background(400):
        first, last = record.pop("name").split(" ")
        records.append(record | {"first_name": first, "last_name": last})
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.learn(read)
    probability_of_pair, reasons = matcher.explain(model, read, 0, 1)
    assert probability_of_pair > 0.9
    english = [reason.text() for reason in reasons]
    assert any(text.startswith("full name: variants of one name (") and "for a match" in text for text in english)
    assert any(text.startswith("phone: the same") and "for a match" in text for text in english)
    assert "email: missing on one side, no evidence" in english
    with translation.override("ru"):
        russian = [reason.text() for reason in reasons]
    assert any(text.startswith("полное имя: варианты одного имени (") and "за совпадение" in text
               for text in russian), russian
    assert "email: нет на одной из сторон, не в счёт" in russian
    assert any(text.startswith("телефон: совпадает") for text in russian), russian


def test_candidate_pairs_oversized_key_still_meets_through_another():
    # 100 records share one first name (an oversized block); two of them also share a surname.
    records = [{"first_name": "Ivan", "last_name": f"Surname{index}"} for index in range(100)]
    records[10]["last_name"] = records[20]["last_name"] = "Zaitsev"
    read = matcher.read_records(records, [matcher.FieldSpec("first_name", c.PERSON_NAME),
                                          matcher.FieldSpec("last_name", c.PERSON_NAME)])
    pairs = {tuple(pair) for pair in blocking.candidate_pairs(read.columns, read.types, max_block=20).tolist()}
    assert (10, 20) in pairs
    assert len(pairs) < 100  # the 4,950 pairs of all Ivans are never formed


def test_infer_schema_joins_person_name_columns_and_guesses_types():
    records = [{"given_name": "Ivan", "surname": "Petrov", "date_of_birth": "19800409", "postcode": "2000",
                "email": "ivan@mail.ru", "phone_number": "+7 912 345-67-89", "company": "Romashka LLC",
                "city": "Moscow"}]
    schema = {spec.name: spec for spec in matcher.infer_schema(records)}
    assert schema["name"].columns == ("given_name", "surname")
    assert {name: spec.type for name, spec in schema.items()} == {
        "name": c.PERSON_NAME, "date_of_birth": c.DATE, "postcode": c.IDENTIFIER, "email": c.EMAIL,
        "phone_number": c.PHONE, "company": c.COMPANY_NAME, "city": c.TEXT}


def test_find_groups_garbage_everywhere_never_crashes():
    records = [{"name": "x" * 10_000, "phone": "abc", "birth_date": "31/31/2020", "email": "@@"}] * 3 + [
        {"name": None, "phone": 12, "birth_date": object(), "email": ["a@b.ru", None]}]
    read = matcher.read_records(records, matcher.infer_schema(records))
    assert matcher.find_groups(read).groups == []
    assert all(value is None for value in read.columns[0][:3])


def test_probability_of_weight():
    assert probability(0.0) == pytest.approx(0.5)
    assert probability(10.0) > 0.999
