"""Learning from a bounded, stratified sample of the candidate pairs: the same m, u and prior as from every pair,
learning without scoring, and the scan's learn-then-score path reading and blocking the base once."""
import random

import numpy as np
import pytest

from dedup.engine import scan_scored
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import entity, matcher, sampling
from dedup.engine.scoring.levels import code_column
from dedup.engine.scoring.model import FieldWeights, expectation_maximisation
from dedup.models import ScoringModel
from tests.dedup.test_scoring_entity import base  # noqa: F401 (the fixture)
from tests.dedup.test_scoring_model import TRUE_M, TRUE_PRIOR, TRUE_U, generated_levels


def em_fields():
    return [FieldWeights(f"f{index}", c.IDENTIFIER, [0.5, 0.3, 0.2], list(u)) for index, u in enumerate(TRUE_U)]


def test_expectation_maximisation_on_a_weighted_sample_recovers_known_m_and_prior_as_on_every_pair():
    # Given pairs of known m, u and prior, and a sample that keeps every pair agreeing on the first field but one
    # in four of the others (as the stratified sample thins the big strata)
    gammas = generated_levels(200_000)
    generator = np.random.default_rng(4)
    exact = gammas[:, 0] == 0
    kept = exact | (generator.random(len(gammas)) < 0.25)
    weights = np.where(exact, 1.0, 4.0)[kept]

    # When EM runs on every pair, and on the sample with and without its weights
    everything, weighted, unweighted = em_fields(), em_fields(), em_fields()
    prior_all, _ = expectation_maximisation(gammas, everything, prior=0.05)
    prior_weighted, _ = expectation_maximisation(gammas[kept], weighted, prior=0.05, sample_weights=weights)
    prior_unweighted, _ = expectation_maximisation(gammas[kept], unweighted, prior=0.05)

    # Then the weighted sample gives what every pair gives, the known m and prior; unweighted it is biased
    assert prior_all == pytest.approx(TRUE_PRIOR, abs=0.02)
    assert prior_weighted == pytest.approx(prior_all, abs=0.01)
    for field_all, field_weighted, m in zip(everything, weighted, TRUE_M):
        assert field_weighted.m == pytest.approx(field_all.m, abs=0.02)
        assert field_weighted.m == pytest.approx(m, abs=0.03)
    assert abs(prior_unweighted - TRUE_PRIOR) > 0.2


def test_stratified_sample_keeps_small_strata_whole_and_weighs_the_rest_for_their_stratum():
    # Given 10,000 pairs on one field: 9,900 of two different values, 100 of one value (a rare pattern)
    column = code_column([("a",), ("b",), ("c",)])
    pairs = np.array([[0, 1]] * 9_900 + [[2, 2]] * 100, dtype=np.int64)

    # When 1,000 of them are sampled
    rows, weights = sampling.stratified_sample([column], pairs, 1_000)

    # Then about the budget is kept, the rare pattern whole at weight 1, and the weights add up to every pair
    assert len(rows) == pytest.approx(1_000, rel=0.1) and len(set(rows.tolist())) == len(rows)
    assert (pairs[rows, 0] == 2).sum() == 100
    assert weights[pairs[rows, 0] == 2].tolist() == [1.0] * 100
    assert weights.sum() == pytest.approx(len(pairs), rel=0.1)
    assert sampling.stratified_sample([column], pairs, len(pairs))[1] is None


def planted_base(people: int, seed: int = 5) -> list[dict]:
    """People with a name, a phone and a birth date; every fifth entered again with the phone retyped, every
    seventh with a typo in the surname."""
    rng = random.Random(seed)
    surnames = ["Smirnov", "Ivanov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novikov", "Morozov",
                "Volkov", "Baker", "Walker", "Wright", "Green", "Hill", "Adams", "Nelson", "Carter", "Roberts"]
    firsts = ["Anna", "Olga", "Ivan", "Petr", "John", "Mary", "Kate", "Paul", "Mark", "Emma", "Oleg", "Irina"]
    records = []
    for person in range(people):
        born = f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
        surname = rng.choice(surnames)
        record = {"name": f"{rng.choice(firsts)} {surname}", "phone": f"+7912{person:07d}", "birth_date": born}
        records.append(record)
        if person % 5 == 0:
            records.append(dict(record, phone=f"8 912 {person:07d}"))
        if person % 7 == 0:
            records.append(dict(record, name=record["name"].replace(surname, surname[:-2] + surname[-1] + surname[-2])))
    return records


def test_learn_from_a_sample_of_the_candidate_pairs_gives_the_weights_of_every_pair(monkeypatch):
    # Given a base whose candidate pairs are many more than the sample
    records = planted_base(3_000)
    read = matcher.read_records(records, matcher.infer_schema(records))
    pairs = matcher.candidate_pairs(read)
    budget = len(pairs) // 4

    # When the model is learned from every pair, and from a quarter of them
    everything = matcher.learn(read, pairs, em_sample=len(pairs))
    compared = []
    levels_of = matcher.comparison_levels
    monkeypatch.setattr(matcher, "comparison_levels",
                        lambda records, pairs, **kwargs: compared.append(len(pairs)) or levels_of(records, pairs, **kwargs))
    sampled = matcher.learn(read, pairs, em_sample=budget)

    # Then only the sample (and the random pairs for u) was compared, and the weights are the same within a few
    # tenths of a bit, the prior within a tenth of itself
    assert sum(compared) <= budget + matcher.U_SAMPLE_PAIRS
    assert sampled.prior == pytest.approx(everything.prior, rel=0.1)
    table_all, table_sampled = everything.weights_table(), sampled.weights_table()
    known = ~np.isnan(table_all)
    assert np.abs(table_all[known] - table_sampled[known]).max() < 0.5
    for name in ("name", "phone", "birth_date"):
        assert sampled.field(name).m[0] == pytest.approx(everything.field(name).m[0], abs=0.02)


def stored_weights() -> tuple[float, dict]:
    stored = ScoringModel.objects.get(entity="customer")
    return stored.prior, {(weight.field, weight.level): (weight.m, weight.u) for weight in stored.weights.all()}


def test_scoring_model_learn_stores_the_model_scoring_learn_stores_without_grouping(base, monkeypatch):  # noqa: F811
    # Given the model scoring_learn (learn, then find the groups) stores on a base
    entity.scoring_learn(entity="customer")
    with_groups = stored_weights()
    ScoringModel.objects.all().delete()

    # When the model alone is learned, with grouping made impossible
    def no_grouping(*args, **kwargs):
        raise AssertionError("learning the model grouped the base")

    monkeypatch.setattr(matcher, "find_groups", no_grouping)
    monkeypatch.setattr(matcher, "group", no_grouping)
    learned = entity.scoring_model_learn(entity="customer")

    # Then the same model is stored, learned from the same records and pairs
    assert stored_weights() == with_groups
    assert learned.stored.records == len(learned.pks) and learned.stored.candidate_pairs == len(learned.pairs)


@pytest.mark.usefixtures("rules_and_fresh_scorer")
def test_the_scan_learning_first_reads_and_blocks_the_base_once_and_finds_what_the_stored_model_finds(
        base, monkeypatch):  # noqa: F811
    # Given no stored model, and the base's reading and blocking counted
    calls = {"read": 0, "block": 0}
    read_entity, candidate_pairs = entity.read_entity, matcher.candidate_pairs

    def counted_read(*args, **kwargs):
        calls["read"] += 1
        return read_entity(*args, **kwargs)

    def counted_block(*args, **kwargs):
        calls["block"] += 1
        return candidate_pairs(*args, **kwargs)

    monkeypatch.setattr(entity, "read_entity", counted_read)
    monkeypatch.setattr(scan_scored, "read_entity", counted_read)
    monkeypatch.setattr(matcher, "candidate_pairs", counted_block)

    # When the scan's scored pass learns the model and then scores with it
    learning = scan_scored.scored_groups("customer")

    # Then the base was read and blocked once, and the groups are those the stored model finds on a later scan
    assert calls == {"read": 1, "block": 1}
    assert ScoringModel.objects.filter(entity="customer").exists()
    assert learning and {tuple(group.ids) for group in scan_scored.scored_groups("customer")} == {
        tuple(group.ids) for group in learning}
    assert calls == {"read": 2, "block": 2}
