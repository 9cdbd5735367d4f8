"""A person name weighed jointly with whether both records hold a contact (model.FieldWeights.m_contact)."""
import math

import numpy as np
import pytest
from django.utils import translation

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import matcher, store
from dedup.engine.scoring.model import (
    FieldWeights,
    Model,
    contact_compared,
    fold_labels,
    pair_weights,
    probability,
    refine_names,
)

EXACT, VARIANT, TYPO = 0, 1, 2
PHONE_EXACT, PHONE_DIFFERENT = 0, 4
MISSING = c.MISSING


def name_and_phone(m_contact=None, u_contact=None) -> Model:
    """A name and a phone; among matches a name typo only on pairs where a record has no phone (when split)."""
    name = FieldWeights("name", c.PERSON_NAME, [0.80, 0.05, 0.15, 0.0, 0.0, 0.0, 0.0],
                        [0.00002, 0.00001, 0.00002, 0.0001, 0.0001, 0.01, 0.98975], label="full name")
    name.m_contact, name.u_contact = m_contact, u_contact
    phone = FieldWeights("phone", c.PHONE, [0.90, 0.0, 0.0, 0.07, 0.03], [0.000001, 0.000001, 0.000001, 0.1, 0.899997])
    return Model([name, phone], prior=0.0001)


def split_model() -> Model:
    # Half the matches have a phone on both records, none of them with a typo; 90 % of random pairs do.
    return name_and_phone(m_contact=[0.5, 0.0001, 0.0001, 0.0, 0.0, 0.0, 0.0],
                          u_contact=[0.9 * value for value in name_and_phone().field("name").u])


def test_bayes_factor_with_contact_weighs_a_typo_by_how_records_were_filled_in():
    # Given matches whose name typos all come on records without a phone
    name = split_model().field("name")

    # Then a typo between two records each with a phone is weak evidence, between sparse records strong
    with_phones = name.bayes_factor_log2(TYPO, contact=True)
    sparse = name.bayes_factor_log2(TYPO, contact=False)
    assert with_phones < name.bayes_factor_log2(TYPO) - 5 < sparse - 5
    # And the joint weight is the contacts' part (the same for every level) plus the level's own among the pairs
    # of that side
    for side in (True, False):
        m_side = name.m_contact if side else [m - both for m, both in zip(name.m, name.m_contact)]
        u_side = name.u_contact if side else [u - both for u, both in zip(name.u, name.u_contact)]
        assert name.contact_log2(side) == pytest.approx(math.log2(sum(m_side) / sum(u_side)))
        for level in (EXACT, VARIANT, TYPO):
            own = name.bayes_factor_log2(level, contact=side) - name.contact_log2(side)
            assert own == pytest.approx(math.log2(m_side[level] / sum(m_side) / (u_side[level] / sum(u_side))))


def test_bayes_factor_without_a_split_ignores_the_contacts():
    name = name_and_phone().field("name")
    assert name.bayes_factor_log2(TYPO, contact=True) == name.bayes_factor_log2(TYPO) == \
        name.bayes_factor_log2(TYPO, contact=False)
    assert name.contact_log2(True) == name.contact_log2(False) == 0.0


def test_pair_weights_two_colleagues_with_similar_names_and_own_phones_are_no_match():
    # Robert Johnson and Robert Johnston at one company (a typo's level), each with an own phone; a quick entry
    # "Robert Jonhson" without a phone next to Robert Johnson.
    gammas = np.array([[TYPO, PHONE_DIFFERENT], [TYPO, MISSING]], dtype=np.int8)
    before = probability(pair_weights(name_and_phone(), gammas))
    after = probability(pair_weights(split_model(), gammas))
    assert after[0] < 0.01 < before[0]
    assert after[1] > before[1]
    assert contact_compared(split_model(), gammas).tolist() == [True, False]


def test_refine_names_learns_the_split_from_the_candidates():
    # Given candidate pairs: matches typed in full (phones equal, names exact), quick entries of the same people
    # (no phone on one side, a third of the names with a typo), and strangers with a typo-like name and own phones
    gammas = np.array([[EXACT, PHONE_EXACT]] * 600 + [[EXACT, MISSING]] * 400 + [[TYPO, MISSING]] * 200
                      + [[TYPO, PHONE_DIFFERENT]] * 100 + [[c.LEVELS[c.PERSON_NAME].index("different"),
                                                          PHONE_DIFFERENT]] * 5000, dtype=np.int8)
    agreed = [[None] * len(gammas), [None] * len(gammas)]
    model = name_and_phone()
    all_pairs = 2_000_000.0

    # When the names' m is learned with the share of random pairs that both hold a phone
    refine_names(model, gammas, agreed, all_pairs, start=0.01, contact_share=0.9)

    # Then every typo among matches is on a pair where a record has no phone
    name = model.field("name")
    assert name.m_contact is not None
    assert name.m_contact[TYPO] < 0.01 * name.m[TYPO]
    assert name.m[TYPO] == pytest.approx(0.2 / 1.2, abs=0.03)
    assert sum(name.m_contact) == pytest.approx(0.6 / 1.2, abs=0.03)
    assert name.u_contact == pytest.approx([0.9 * value for value in name.u])
    # And the strangers with a typo-like name and own phones are no match, while the quick entries are
    scores = probability(pair_weights(model, np.array([[TYPO, PHONE_DIFFERENT], [TYPO, MISSING]], dtype=np.int8)))
    assert scores[0] < 0.5 < scores[1]


def test_refine_names_without_contact_fields_keeps_the_name_alone():
    name = FieldWeights("name", c.PERSON_NAME, [0.80, 0.05, 0.15, 0.0, 0.0, 0.0, 0.0],
                        [0.00002, 0.00001, 0.00002, 0.0001, 0.0001, 0.01, 0.98975])
    born = FieldWeights("birth_date", c.DATE, [0.9, 0.05, 0.03, 0.02], [0.0001, 0.0001, 0.01, 0.9898])
    model = Model([name, born], prior=0.001)
    gammas = np.array([[EXACT, 0]] * 500 + [[TYPO, 0]] * 100 + [[6, 3]] * 3000, dtype=np.int8)
    refine_names(model, gammas, [[None] * len(gammas)] * 2, 1_000_000.0, start=0.01, contact_share=0.5)
    assert name.m_contact is None and name.u_contact is None


def test_fold_labels_keeps_each_levels_split():
    model = split_model()
    name = model.field("name")
    share = name.m_contact[EXACT] / name.m[EXACT]
    fold_labels(model, np.array([[EXACT, PHONE_EXACT]] * 40, dtype=np.int8), [True] * 40)
    assert name.m_contact[EXACT] / name.m[EXACT] == pytest.approx(share)
    assert sum(name.m) == pytest.approx(1.0)


def test_explain_gives_the_contacts_part_as_a_reason_of_its_own_in_english_and_russian():
    model = split_model()
    records = [{"name": "Robert Johnson", "phone": "+1 702 515 1990"},
               {"name": "Robert Johnston", "phone": "+1 718 705 9022"},
               {"name": "Robert Jonhson", "phone": ""}]
    read = matcher.read_records(records, [matcher.FieldSpec("name", c.PERSON_NAME, "full name"),
                                          matcher.FieldSpec("phone", c.PHONE, "phone")])
    for right, contact in ((1, True), (2, False)):
        found, reasons = matcher.explain(model, read, 0, right)
        # The reasons add up to the pair's probability
        assert found == pytest.approx(float(probability(model.prior_log2 + sum(r.weight for r in reasons))))
        part = next(reason for reason in reasons if "phone or an email" in reason.message)
        assert part.weight == pytest.approx(model.field("name").contact_log2(contact))
        if contact:
            assert part.text().startswith("full name: both records give a phone or an email (")
            with translation.override("ru"):
                assert part.text().startswith("полное имя: в обеих записях есть телефон или почта ("), part.text()
        else:
            assert part.text().startswith("full name: at most one of the records gives a phone or an email (")
            assert "for a match" in part.text()
            with translation.override("ru"):
                assert "не больше чем в одной из записей" in part.text(), part.text()


@pytest.mark.django_db
def test_scoring_model_save_and_load_keep_the_split():
    store.scoring_model_save(entity="customer", model=split_model())
    loaded = store.scoring_model_load(entity="customer").field("name")
    expected = split_model().field("name")
    assert loaded.m_contact == pytest.approx(expected.m_contact)
    assert loaded.u_contact == pytest.approx(expected.u_contact)
    assert store.scoring_model_load(entity="customer").field("phone").m_contact is None


@pytest.mark.django_db
def test_scoring_model_admin_shows_each_name_levels_evidence_on_both_sides(admin_client):
    # Given a stored model whose name is weighed with the contacts
    from django.urls import reverse

    stored = store.scoring_model_save(entity="customer", model=split_model())

    # When the administrator opens it
    page = admin_client.get(reverse("admin:dedup_scoringmodel_change", args=[stored.pk])).content.decode()

    # Then a name typo's evidence is shown for two records with a phone (weak) and otherwise (strong)
    name = split_model().field("name")
    assert "both records giving a phone or an email" in page
    weak, strong = name.bayes_factor_log2(TYPO, contact=True), name.bayes_factor_log2(TYPO, contact=False)
    assert weak < 3 < 16 < strong
    assert "%+.1f" % weak in page
    assert "%+.1f" % strong in page
    with translation.override("ru"):
        page = admin_client.get(reverse("admin:dedup_scoringmodel_change", args=[stored.pk]),
                                HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "телефон или почта в обеих записях" in page
