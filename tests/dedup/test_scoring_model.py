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
    seen_once_share,
)
from dedup.engine.scoring.shared import shared_values

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
    weights = FieldWeights("phone", c.PHONE, [0.9, 0.04, 0.03, 0.01, 0.02], [0.0001, 0.0001, 0.0001, 0.0097, 0.99])
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


LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _firms(count: int) -> list[str]:
    return [f"{LETTERS[index // 26]}{LETTERS[index % 26]}firm" for index in range(count)]


def _namesakes(first: str, last: str, companies: list[str]) -> list[dict]:
    """One person's name at each of these companies, then 120 holders of the first name alone and 120 of the last
    name alone: the name's combined block is too big to compare whole, and each word's block three times that."""
    records = [{"first_name": first, "last_name": last, "company": company} for company in companies]
    for index in range(120):
        records.append({"first_name": first, "last_name": f"Zz{LETTERS[index % 26]}{LETTERS[index // 26]}x"})
        records.append({"first_name": f"Yy{LETTERS[index % 26]}{LETTERS[index // 26]}x", "last_name": last})
    return records


def _candidates(read) -> set[tuple[int, int]]:
    return {tuple(pair) for pair in blocking.candidate_pairs(read.columns, read.types, max_block=20).tolist()}


def test_candidate_pairs_too_big_combined_block_still_yields_its_near_pair(monkeypatch):
    # 60 namesakes at 60 companies, and a 61st whose company is the 60th's with two letters swapped: sorted by
    # company inside the block, they meet.
    records = _namesakes("Irina", "Zimina", _firms(59) + ["Vector", "Vcetor"])
    read = matcher.read_records(records, matcher.infer_schema(records))
    pairs = _candidates(read)
    assert (59, 60) in pairs
    namesakes = [pair for pair in pairs if pair[1] < 61]
    # Each company's holders meet those of the next NEIGHBOURS companies, spelled forwards and backwards (a folded
    # company is held by one or two of them: "acfirm" and "akfirm" fold alike): not the 1,830 pairs of every
    # namesake.
    assert len(namesakes) <= 61 * blocking.NEIGHBOURS * 2 * 2
    # Without the sorted neighbourhood the block was dropped and the pair never met.
    monkeypatch.setattr(blocking, "NEIGHBOUR_BLOCK_TIMES", 0)
    assert (59, 60) not in _candidates(read)


def test_candidate_pairs_typo_next_to_a_value_few_namesakes_hold_meets_each_of_them(monkeypatch):
    # 60 Irina Zimina at 60 companies, three of them at "Vector", and a copy of the third at "Vectro": sorted by
    # company, the typo's one holder meets all three holders of its neighbour, not only the first two by row.
    records = _namesakes("Irina", "Zimina", _firms(57) + ["Vector", "Vector", "Vector", "Vectro"])
    read = matcher.read_records(records, matcher.infer_schema(records))
    pairs = _candidates(read)
    assert {(57, 60), (58, 60), (59, 60)} <= pairs
    # Only a few holders meet holder by holder: the block's other namesakes are not all compared.
    assert len([pair for pair in pairs if pair[1] < 61]) <= 61 * blocking.NEIGHBOURS * 2 * 2
    monkeypatch.setattr(blocking, "NEIGHBOUR_PAIRS", 0)
    assert (59, 60) not in _candidates(read)


def test_candidate_pairs_few_holders_of_one_value_in_a_sorted_block_meet_each_other(monkeypatch):
    # Five namesakes at one "Harbor" among 60 in the name's block: they meet each other (one may be the other's copy
    # with its first name as a nickname); six would not.
    records = _namesakes("Rebecca", "Johnson", _firms(55) + ["Harbor"] * 5)
    # Harbor is big, with many Rebeccas and many Johnsons: no block of the company with either name is small.
    for index in range(25):
        records.append({"first_name": "Rebecca", "last_name": f"Ww{LETTERS[index]}x", "company": "Harbor"})
        records.append({"first_name": f"Vv{LETTERS[index]}x", "last_name": "Johnson", "company": "Harbor"})
    read = matcher.read_records(records, matcher.infer_schema(records))
    five = {(55 + a, 55 + b) for a in range(5) for b in range(a + 1, 5)}
    assert five <= _candidates(read)
    monkeypatch.setattr(blocking, "SAME_VALUE_HOLDERS", 3)
    assert not five <= _candidates(read)


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


def test_phone_different_splits_on_a_shared_line():
    # Three people at one office give its switchboard; Olga gives her own line on another record, and a namesake
    # of hers at the same office gives his own line.
    records = [
        {"name": "Olga Smirnova", "phone": "+7 495 100-00-01"},
        {"name": "Petr Kuznetsov", "phone": "+7 495 100-00-01"},
        {"name": "Anna Belova", "phone": "+7 495 100-00-01"},
        {"name": "Olga Smirnova", "phone": "+7 912 345-67-89"},
        {"name": "Olga Smirnova", "phone": "+7 916 000-11-22"},
    ]
    read = matcher.read_records(records, matcher.infer_schema(records))
    shared = shared_values(read)
    phone = [spec.name for spec in read.schema].index("phone")
    assert shared[phone] == {"+74951000001": 3}
    pairs = np.array([[0, 3], [3, 4], [0, 1]], dtype=np.int64)
    levels = matcher.comparison_levels(read, pairs, shared=shared)[:, phone]
    assert [c.LEVELS[c.PHONE][level] for level in levels] == ["different_shared", "different", "exact"]
    # Without the base's shared values (a caller that has none) the level stays "different".
    assert c.LEVELS[c.PHONE][matcher.comparison_levels(read, pairs)[0, phone]] == "different"


def test_learned_phone_disagreement_on_own_lines_weighs_more_than_on_a_switchboard():
    # Every third person gives the office switchboard on their first record and their own line on the copy: a
    # person's records differ on a switchboard often, on two own lines never.
    records = []
    for index, record in enumerate(background(300)):
        if record["phone"] and index % 3 == 0:
            records.append(record | {"phone": "+7 495 100-00-01"})
            records.append(record | {"email": ""})
        else:
            records.append(record)
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.learn(read)
    phone = model.field("phone")
    assert phone.shared.get("+74951000001", 0) > 2
    assert phone.bayes_factor_log2(c.LEVELS[c.PHONE].index("different")) < phone.bayes_factor_log2(
        c.LEVELS[c.PHONE].index("different_shared")) - 1


def test_seen_once_share_is_good_turing():
    # Ten values held by one record each, two held by two records: a value seen on one other record is held by
    # 2 x 2 / 10 of one record's share, not one record's.
    keys = [{f"v{index}"} for index in range(10)] + [{"a"}, {"a"}, {"b"}, {"b"}, None]
    assert seen_once_share(keys) == pytest.approx(0.4 / 13)
    # Every value held twice (no value held once to compare with): one other record's share, never more.
    assert seen_once_share([{"a"}, {"a"}, {"b"}, {"b"}]) == pytest.approx(1 / 3)
    assert seen_once_share([{"a"}]) == 0.0


def test_learn_weighs_a_name_two_records_share_as_rare_as_the_base_says():
    records = background(300)
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.learn(read)
    name = model.field("name")
    holders = len(records)
    assert name.tf_floor < 1 / (holders - 1)
    # A name held by the two records of one pair counts at the floor; a common one by its count.
    assert all(share > 1 / (holders - 1) for share in name.tf.values())


def test_groups_keep_two_namesakes_at_one_company_apart_when_a_copy_has_only_name_and_company():
    # Two Olga Smirnovas at one company, each with her own phone and email; a copy of the first carries only the
    # name and the company, so pair by pair it looks like both. Pooled, the namesakes' phones and emails differ.
    model = Model([
        FieldWeights("name", c.PERSON_NAME, [0.80, 0.05, 0.05, 0.02, 0.02, 0.02, 0.04],
                     [0.00002, 0.0004, 0.001, 0.001, 0.002, 0.01, 0.98558]),
        FieldWeights("company", c.COMPANY_NAME, [0.85, 0.04, 0.01, 0.10], [0.002, 0.001, 0.005, 0.992]),
        FieldWeights("phone", c.PHONE, [0.85, 0.05, 0.02, 0.07, 0.01], [0.0001, 0.0001, 0.0001, 0.0097, 0.99]),
        FieldWeights("email", c.EMAIL, [0.85, 0.05, 0.05, 0.05], [0.0001, 0.0001, 0.0098, 0.99]),
    ], prior=0.00001)
    records = [
        {"name": "Olga Smirnova", "company": "Romashka LLC", "phone": "+7 912 345-67-89", "email": "olga@mail.ru"},
        {"name": "Olga Smirnova", "company": "ООО «Ромашка»", "phone": "", "email": ""},
        {"name": "Olga Smirnova", "company": "Romashka", "phone": "+7 916 000-11-22", "email": "smirnova@bk.ru"},
    ]
    read = matcher.read_records(records, [matcher.FieldSpec("name", c.PERSON_NAME),
                                          matcher.FieldSpec("company", c.COMPANY_NAME),
                                          matcher.FieldSpec("phone", c.PHONE), matcher.FieldSpec("email", c.EMAIL)])
    pairs = np.array([[0, 1], [1, 2], [0, 2]], dtype=np.int64)
    _weights, probabilities = matcher.score(model, read, pairs)
    assert probabilities[0] > 0.9 and probabilities[1] > 0.9 and probabilities[2] < 0.1
    # Pair by pair the average of the copy's two links joins all three (two false pairs); pooled it does not.
    assert (probabilities[1] + probabilities[2]) / 2 >= matcher.GROUP_AVERAGE
    groups = matcher.group(model, read, pairs, probabilities, 0.9)
    assert len(groups) == 1 and len(groups[0]) == 2 and 1 in groups[0]
    assert matcher.pooled_probability(model, read, [0, 1], [2]) < 0.1


def test_average_linkage_asks_accept_before_a_join():
    probabilities = {(1, 2): 0.99, (2, 3): 0.99, (1, 3): 0.2}
    assert clustering.average_linkage([1, 2, 3], probabilities, 0.5) == [[1, 2, 3]]
    refused = clustering.average_linkage([1, 2, 3], probabilities, 0.5,
                                         accept=lambda left, right: not ({1, 3} <= set(left) | set(right)))
    assert len(refused) == 1 and len(refused[0]) == 2 and 2 in refused[0]


def test_explain_a_phone_differing_on_a_shared_line_in_english_and_russian():
    records = [
        {"name": "Olga Smirnova", "phone": "+7 495 100-00-01", "email": "olga.smirnova@mail.ru"},
        {"name": "Olga Smirnova", "phone": "+7 912 345-67-89", "email": "olga.smirnova@mail.ru"},
        {"name": "Petr Kuznetsov", "phone": "+7 495 100-00-01", "email": "petr.k@yandex.ru"},
        {"name": "Anna Belova", "phone": "+7 495 100-00-01", "email": "anna.b@yandex.ru"},
    ] + background(300)
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.learn(read)
    _probability, reasons = matcher.explain(model, read, 0, 1)
    phone = next(reason for reason in reasons if reason.field == "phone")
    assert phone.text().startswith("phone: different, one of them shared by several people (")
    with translation.override("ru"):
        assert phone.text().startswith("телефон: различаются, один из них общий для нескольких человек ("), phone.text()


def test_explain_pairs_gives_each_pair_what_explain_gives_it_alone():
    records = [{"name": "Michael Smith", "phone": "+7 912 345-67-89", "email": "m.smith@mail.ru"},
               {"name": "Micheal Smith", "phone": "8 912 345 67 89", "email": ""}] + background(300)
    read = matcher.read_records(records, matcher.infer_schema(records))
    model = matcher.learn(read)
    pairs = [(0, 1)] + [(row, row + 1) for row in range(2, 2 + 2 * matcher.FEW_PAIRS)]  # past one batch
    together = matcher.explain_pairs(model, read, pairs)
    assert len(together) == len(pairs)
    for (left, right), (probability_of_pair, reasons) in zip(pairs, together):
        alone, alone_reasons = matcher.explain(model, read, left, right)
        assert probability_of_pair == alone
        assert [(reason.text(), reason.weight) for reason in reasons] == \
            [(reason.text(), reason.weight) for reason in alone_reasons]
    assert together[0][0] > 0.9


def test_distinct_inverse_of_wide_keys_is_numpy_unique():
    from dedup.engine.scoring import graders

    keys = np.random.default_rng(3).integers(0, 1 << 60, 5000, dtype=np.int64)
    keys[::7] = keys[0]  # repeats
    expected, expected_inverse = np.unique(keys, return_inverse=True)
    for overwrite in (False, True):
        distinct, inverse = graders.distinct_inverse(keys.copy(), 1 << 62, overwrite=overwrite)
        assert distinct.tolist() == expected.tolist()
        assert inverse.tolist() == expected_inverse.ravel().tolist()
