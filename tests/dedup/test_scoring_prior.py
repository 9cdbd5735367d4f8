"""The prior over all pairs (the probability that two random records match), the names' m under it, the threshold."""
import importlib
import random

import numpy as np
import pytest

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import matcher
from dedup.engine.scoring.model import (
    FieldWeights,
    Model,
    expectation_maximisation,
    pair_weights,
    prior_over_all_pairs,
)

# Three identifier fields (exact, one character, different), each independent of the others given the match status,
# in a base of 10^8 pairs; blocking keeps the pairs that agree on field 0 at least up to one character: the matches
# that do, and every stranger pair that does (500,000 of them, "look-alikes", far likelier to agree on field 0 than
# the random pairs u describes).
M = [[0.90, 0.06, 0.04], [0.85, 0.10, 0.05], [0.80, 0.10, 0.10]]
U = [[0.001, 0.004, 0.995], [0.002, 0.008, 0.99], [0.01, 0.02, 0.97]]
ALL_PAIRS = 1e8


def blocked_levels(matches: int, seed: int = 7) -> tuple[np.ndarray, int]:
    """Return the blocked pairs' levels (matches first) and how many matches blocking kept."""
    generator = np.random.default_rng(seed)
    strangers = int(ALL_PAIRS * (U[0][0] + U[0][1]))
    columns = []
    for column, (m, u) in enumerate(zip(M, U)):
        from_m = generator.choice(3, size=matches, p=m)
        blocked = [u[0] / (u[0] + u[1]), u[1] / (u[0] + u[1]), 0.0] if column == 0 else u
        columns.append(np.concatenate([from_m, generator.choice(3, size=strangers, p=blocked)]))
    gammas = np.stack(columns, axis=1).astype(np.int8)
    kept = gammas[:, 0] != 2
    return gammas[kept], int(kept[:matches].sum())


def known_model() -> Model:
    return Model([FieldWeights(f"f{index}", c.IDENTIFIER, list(m), list(u)) for index, (m, u) in enumerate(zip(M, U))],
                 prior=0.5)


def test_prior_over_all_pairs_recovers_the_share_of_matches_the_candidates_em_overstates():
    # Given 3,000 matches among 10^8 pairs, blocked with 500,000 look-alikes
    gammas, matches = blocked_levels(3_000)
    model = known_model()
    fields = [FieldWeights(weights.name, weights.type, list(weights.m), list(weights.u)) for weights in model.fields]
    candidates_prior, _iterations = expectation_maximisation(gammas, fields, prior=0.05, fixed_m=[True] * 3)
    scaled = candidates_prior * len(gammas) / ALL_PAIRS
    evidence = pair_weights(model, gammas) - model.prior_log2

    # When the prior is solved over all pairs
    prior = prior_over_all_pairs(evidence, ALL_PAIRS, start=scaled)

    # Then it is the share of matches among all pairs, where the candidates' EM scaled up counts look-alikes as
    # part-matches (u says that agreeing on field 0 is rare; among the candidates it is the rule)
    assert prior == pytest.approx(matches / ALL_PAIRS, rel=0.05)
    assert scaled > 3 * matches / ALL_PAIRS


def test_prior_over_all_pairs_weighs_a_sample_for_its_stratum():
    gammas, matches = blocked_levels(3_000)
    evidence = pair_weights(known_model(), gammas) - known_model().prior_log2
    every = prior_over_all_pairs(evidence, ALL_PAIRS, start=1e-3)
    # Every match kept, one look-alike in ten, standing for ten
    keep = np.r_[np.arange(matches), np.arange(matches, len(gammas), 10)]
    weights = np.where(keep < matches, 1.0, 10.0)

    sampled = prior_over_all_pairs(evidence[keep], ALL_PAIRS, start=1e-3, sample_weights=weights)

    assert sampled == pytest.approx(every, rel=0.05)


def test_prior_over_all_pairs_keeps_a_start_below_the_candidates_matches():
    # Every candidate a sure match, the start (an EM prior capped at one half, scaled) short of them all
    evidence = np.full(1_000, 40.0)

    assert prior_over_all_pairs(evidence, 1e9, start=0.5 * 1_000 / 1e9) == pytest.approx(0.5e-6)


def test_prior_over_all_pairs_without_evidence_of_a_match_is_the_lowest():
    evidence = np.full(1_000, -20.0)

    assert prior_over_all_pairs(evidence, 1e9, start=1e-3) < 1e-12


def planted_base(people: int = 2_000, seed: int = 3) -> tuple[list[dict], set[tuple[int, int]]]:
    """Return records of people (name, phone, email, birth date) with two kinds of copies, and the true pairs:
    a careful copy (every field, the phone retyped) of every tenth, and a sparse one (a surname typo and the
    birth date only, as a quick form gives) of every twentieth."""
    rng = random.Random(seed)
    firsts = ["Anna", "Olga", "Ivan", "Petr", "John", "Mary", "Kate", "Paul", "Mark", "Emma", "Oleg", "Irina"]
    records, truth = [], set()
    for person in range(people):
        surname = "".join(rng.choice("bcdfgklmnprstv") + rng.choice("aeiou") for _ in range(3)).title() + "ov"
        record = {"name": f"{rng.choice(firsts)} {surname}", "phone": f"+7912{person:07d}",
                  "email": f"client{person}@mail.ru", "birth_date": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-"
                                                                   f"{rng.randint(10, 28)}"}
        row = len(records)
        records.append(record)
        if person % 10 == 0:
            truth.add((row, len(records)))
            records.append(dict(record, phone=f"8 912 {person:07d}"))
        elif person % 20 == 5:
            truth.add((row, len(records)))
            name = record["name"]
            records.append({"name": name[:-2] + name[-1] + name[-2], "birth_date": record["birth_date"]})
    return records, truth


def test_learn_finds_the_probability_that_two_random_records_match():
    records, truth = planted_base()
    read = matcher.read_records(records, matcher.infer_schema(records))

    model = matcher.learn(read)

    all_pairs = len(records) * (len(records) - 1) / 2
    assert model.prior == pytest.approx(len(truth) / all_pairs, rel=0.2)


def test_learn_counts_the_name_typos_of_sparse_copies_in_the_names_m():
    # A third of the copies carry a surname typo and nothing else but the birth date: the pairs that agree on
    # two other fields (the careful copies) all agree on the name, so only EM under the prior over all pairs
    # sees the typos.
    records, truth = planted_base()
    read = matcher.read_records(records, matcher.infer_schema(records))

    model = matcher.learn(read)

    name = model.field("name")
    typo = name.m[name.levels.index("fuzzy_high")]
    assert typo == pytest.approx(1 / 3, abs=0.08)
    groups = matcher.find_groups(read, model=model).groups
    assert matcher.group_pairs(groups) == truth


def test_default_threshold_finds_the_planted_pairs_and_no_strangers():
    records, truth = planted_base(seed=4)
    read = matcher.read_records(records, matcher.infer_schema(records))

    result = matcher.find_groups(read)

    assert matcher.DEFAULT_THRESHOLD == 0.5
    assert matcher.group_pairs(result.groups) == truth
    # Calibrated: every pair above the threshold is a true one, and the true pairs sit far above it
    above = result.probabilities >= matcher.DEFAULT_THRESHOLD
    assert {tuple(pair) for pair in result.pairs[above].tolist()} == truth
    assert np.median(result.probabilities[above]) > 0.99


@pytest.mark.django_db
def test_migration_moves_the_former_default_threshold_and_asks_for_learning_again():
    from django.apps import apps
    from django.utils import timezone

    from dedup.models import ScoringModel

    migration = importlib.import_module("dedup.migrations.0020_scoring_prior_over_all_pairs")
    at_default = ScoringModel.objects.create(entity="customer", prior=1e-5, threshold=0.9, learned_at=timezone.now())
    chosen = ScoringModel.objects.create(entity="lead", prior=1e-5, threshold=0.97, learned_at=timezone.now())

    migration.forwards(apps, None)

    at_default.refresh_from_db()
    chosen.refresh_from_db()
    assert (at_default.threshold, at_default.learned_at) == (0.5, None)
    assert (chosen.threshold, chosen.learned_at) == (0.97, None)
