"""Similarity scores: how alike two names, company names or texts are, one pair at a time and a block at a time."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup.engine.normalize import company_name_key, person_name_key, text_key
from dedup.engine.similarity import (
    GENDERED_CAP,
    INITIALS_CAP,
    best_pairs,
    company_similarity,
    gendered_pair,
    name_similarity,
    similarity,
    text_similarity,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCORERS = [name_similarity, company_similarity, text_similarity]


@pytest.mark.parametrize(
    ("first", "second", "low", "high"),
    [
        ("Иван Петров", "Ivan Petrov", 100, 100),
        ("PETROV ivan", "Иван Петров", 100, 100),
        ("Aleksandr Pushkin", "Александр Пушкин", 100, 100),
        ("Petrov I.", "Ivan Petrov", INITIALS_CAP, INITIALS_CAP),
        ("Петров И. С.", "Ivan Sergeevich Petrov", INITIALS_CAP, INITIALS_CAP),
        ("Ivan Petrov", "Иван Сергеевич Петров", 90, 90),
        ("Ivan Petrov", "Ivan Petrof", 88, 99),
        ("Ivan Petrov", "Ivan Petorv", 85, 99),
        ("Aleksandr Ivanov", "Aleksandr Ivanv", 90, 99),
        ("Ivan Petrov", "Ivan Petrova", 0, GENDERED_CAP),
        ("Aleksandr Ivanov", "Aleksandra Ivanova", 0, GENDERED_CAP),
        ("Пётр Чайковский", "Пётр Чайковская", 0, GENDERED_CAP),
        ("Ivan Petrov", "Maria Sidorova", 0, 55),
        ("Ivan", "Ivan Petrov", 0, 60),
        ("Ivan Petrov", "Petr Ivanov", 0, 85),
        ("Ivan Petrov", None, 0, 0),
        ("😀", "😀", 0, 0),
    ],
)
def test_name_similarity_scores_like_a_manager_would_judge(first, second, low, high):
    # Given two names, when they are scored, then the score lies where a manager would put it, both ways round
    score = name_similarity(first, second)
    assert low <= score <= high
    assert name_similarity(second, first) == score


def test_name_similarity_ranks_a_typo_above_a_different_person():
    # Given a name, a typo of it and another person's name, then the typo scores higher than the other person
    typo = name_similarity("Ivan Petrov", "Ivan Pertov")
    other = name_similarity("Ivan Petrov", "Ivan Sidorov")
    assert typo > other


def test_gendered_pair_masculine_and_feminine_forms():
    # Given folded words, then the masculine and feminine forms of one name are a gendered pair, other pairs are not
    assert gendered_pair("petrov", "petrova")
    assert gendered_pair("chaikovskaia", "chaikovski")
    assert gendered_pair("tolstoi", "tolstaia")
    assert gendered_pair("ivan", "ivana")
    assert not gendered_pair("an", "ana")  # Ann / Anna: a spelling, not a gender
    assert not gendered_pair("petrov", "petrov")
    assert not gendered_pair("marina", "maria")


@pytest.mark.parametrize(
    ("first", "second", "low", "high"),
    [
        ("ООО «Ромашка»", "Romashka LLC", 100, 100),
        ("Coca-Cola Company", "CocaCola Inc.", 100, 100),
        ("Romashka", "Romashka Trade", 60, 80),
        ("Romashka", "Romashko", 85, 95),
        ("Romashka", "Lyutik", 0, 30),
        ("", "Romashka", 0, 0),
    ],
)
def test_company_similarity_ignores_legal_forms_and_spacing(first, second, low, high):
    # Given two company names, then the score ignores legal forms, quotes, scripts and spacing, both ways round
    score = company_similarity(first, second)
    assert low <= score <= high
    assert company_similarity(second, first) == score


@pytest.mark.parametrize(
    ("first", "second", "low", "high"),
    [
        ("Web design", "WEB   DESIGN", 100, 100),
        ("design web", "web design", 100, 100),
        ("Website redesign", "Web site redesign", 90, 99),
        ("Website redesign", "Logo", 0, 30),
        (7707083893, "7707083893", 100, 100),
        (None, "x", 0, 0),
    ],
)
def test_text_similarity_ignores_case_spacing_and_word_order(first, second, low, high):
    # Given two texts, then the score ignores case, spacing and word order
    score = text_similarity(first, second)
    assert low <= score <= high
    assert text_similarity(second, first) == score


def test_similarity_dispatches_on_field_kind():
    # Given registry field kinds, then each gets its scorer, and kinds without one are scored as text
    assert similarity("person_name", "Иван Петров", "Ivan Petrov") == 100
    assert similarity("company_name", "ООО Ромашка", "Romashka LLC") == 100
    assert similarity("text", "A b", "b a") == 100
    assert similarity("email", "ivan@mail.ru", "IVAN@mail.ru") == 100


# ---------------------------------------------------------------------------------------------------------------
# best_pairs


def test_best_pairs_finds_the_duplicates_of_a_block_best_first():
    # Given a block of name keys with a duplicate, an initial form, a typo, a gendered form and a stranger
    raw = ["Иван Петров", "Maria Sidorova", "PETROV Ivan", "Petrov I.", "Ivan Petrova", "Ivan Pertov", None]
    keys = [person_name_key(name) for name in raw]

    # When the pairs scoring at least 90 are found
    pairs = best_pairs(keys, 90)

    # Then the exact spelling comes first, then the initial form and the typo; the gendered form and the
    # stranger are not paired, and neither is the missing name
    assert pairs[0] == (0, 2, 100)
    found = {(i, j) for i, j, _ in pairs}
    assert {(0, 3), (2, 3), (0, 5), (2, 5)} <= found
    assert not any(4 in (i, j) or 1 in (i, j) or 6 in (i, j) for i, j, _ in pairs)
    assert all(i < j and score >= 90 for i, j, score in pairs)
    assert [score for _, _, score in pairs] == sorted((score for _, _, score in pairs), reverse=True)


def test_best_pairs_company_and_text_blocks():
    # Given company and text blocks, then their pairs carry the single-pair scores
    companies = [company_name_key(name) for name in ["ООО «Ромашка»", "Romashka LLC", "Lyutik", "Romashko"]]
    assert best_pairs(companies, 85, kind="company_name") == [
        (0, 1, 100),
        (0, 3, company_similarity("Ромашка", "Romashko")),
        (1, 3, company_similarity("Ромашка", "Romashko")),
    ]
    texts = [text_key(value) for value in ["Web design", "design web", "Logo"]]
    assert best_pairs(texts, 90, kind="text") == [(0, 1, 100)]


def test_best_pairs_small_or_empty_blocks():
    # Given blocks with fewer than two keys, then there are no pairs
    assert best_pairs([], 80) == []
    assert best_pairs(["ivan petrov"], 80) == []
    assert best_pairs([None, "", "ivan petrov"], 0) == []


def test_best_pairs_large_block_spans_several_chunks():
    # Given a block larger than one cdist chunk with a duplicate pair at its two ends
    keys = [f"name{index:04d} surname{index:04d}" for index in range(1200)]
    keys.append(keys[0])

    # When pairs scoring 100 are found, then the pair across the chunks is found and nothing else
    assert best_pairs(keys, 100) == [(0, 1200, 100)]


# ---------------------------------------------------------------------------------------------------------------
# Properties

name_alphabet = st.sampled_from(list("abdeiklmnoprstuvIPСергейПетровИвнаю. "))
names = st.text(name_alphabet, max_size=24)
texts = st.one_of(st.text(max_size=40), names, st.none(), st.integers())


@PROPERTY
@given(first=texts, second=texts)
def test_similarity_is_symmetric_and_between_0_and_100(first, second):
    # Given any two values, then every scorer is symmetric, an int in 0..100, and 100 for a value with itself
    for scorer in SCORERS:
        score = scorer(first, second)
        assert isinstance(score, int) and 0 <= score <= 100
        assert scorer(second, first) == score
        if scorer(first, first) != 0:
            assert scorer(first, first) == 100


@PROPERTY
@given(raw=st.text(max_size=40))
def test_similarity_identical_keyable_values_score_100(raw):
    # Given a value that has a key, then it scores 100 with itself
    if person_name_key(raw):
        assert name_similarity(raw, raw) == 100
    if company_name_key(raw):
        assert company_similarity(raw, raw) == 100
    if text_key(raw):
        assert text_similarity(raw, raw) == 100


@PROPERTY
@given(raw=st.lists(names, min_size=2, max_size=12), threshold=st.integers(0, 100))
def test_best_pairs_gives_exactly_the_pairs_the_single_scorer_gives(raw, threshold):
    # Given a block of name keys, then best_pairs finds exactly the pairs name_similarity scores at threshold or more
    keys = [person_name_key(name) for name in raw]
    expected = sorted(
        (i, j, name_similarity(keys[i], keys[j]))
        for i in range(len(keys))
        for j in range(i + 1, len(keys))
        if keys[i] and keys[j] and name_similarity(keys[i], keys[j]) >= threshold
    )
    assert sorted(best_pairs(keys, threshold)) == expected


@PROPERTY
@given(raw=st.lists(st.one_of(names, st.text(max_size=20)), min_size=2, max_size=10), threshold=st.integers(0, 100))
def test_best_pairs_company_and_text_match_the_single_scorers(raw, threshold):
    # Given blocks of company and text keys, then best_pairs agrees with the single-pair scorers
    for kind, keyer, scorer in (
        ("company_name", company_name_key, company_similarity),
        ("text", text_key, text_similarity),
    ):
        keys = [keyer(value) for value in raw]
        expected = sorted(
            (i, j, scorer(keys[i], keys[j]))
            for i in range(len(keys))
            for j in range(i + 1, len(keys))
            if keys[i] and keys[j] and scorer(keys[i], keys[j]) >= threshold
        )
        assert sorted(best_pairs(keys, threshold, kind=kind)) == expected
