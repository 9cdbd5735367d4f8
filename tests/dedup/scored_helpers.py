"""A learned customer model for the tests of the one decision (dedup/engine/decide.py) and its callers.

The weights are those a learn on a CRM base gives in shape (tests/dedup/test_scoring_entity.py learns them
from records): the same company and a variant of the same name are strong evidence, a different name or
company is evidence against. Stored through the store's own service, as a learn stores them.
"""
from __future__ import annotations

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import store
from dedup.engine.scoring.learned import learned_cache_clear
from dedup.engine.scoring.model import FieldWeights, Model
from dedup.models import ScoringModel
from tests import factories
from tests.dedup.engine_helpers import customer_with


def customer_model() -> Model:
    return Model(
        fields=[
            FieldWeights("phone", c.PHONE, [0.85, 0.05, 0.02, 0.03, 0.05], [0.0002, 0.0001, 0.0004, 0.0093, 0.99]),
            FieldWeights("email", c.EMAIL, [0.85, 0.05, 0.03, 0.07], [0.0002, 0.0001, 0.0097, 0.99]),
            FieldWeights("messenger", c.IDENTIFIER, [0.9, 0.02, 0.08], [0.0001, 0.0001, 0.9998]),
            # exact, variant, fuzzy_high, initials, phonetic, fuzzy_mid, different
            FieldWeights("full_name", c.PERSON_NAME, [0.70, 0.12, 0.08, 0.02, 0.02, 0.02, 0.04],
                         [0.0004, 0.0004, 0.001, 0.001, 0.002, 0.01, 0.9852]),
            FieldWeights("company_name", c.COMPANY_NAME, [0.85, 0.04, 0.01, 0.10], [0.002, 0.001, 0.005, 0.992]),
        ],
        prior=0.0002,
    )


def learn_customers(threshold: float = 0.9) -> ScoringModel:
    """Store the customer model as a learn would, with this review threshold."""
    stored = store.scoring_model_save(entity="customer", model=customer_model(), records=100)
    if threshold != stored.threshold:
        stored.threshold = threshold
        stored.save(update_fields=["threshold", "updated_at"])
    learned_cache_clear()
    return stored


def name_variant_pair():
    """The pair the rules miss: a first-name variant at the same company in another legal form, no contacts."""
    first = customer_with("Micheal", "Smith", company=factories.CompanyFactory(name="Acme LLC"))
    second = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Acme Inc"))
    return first, second
