"""The stored scoring model: weights per field and level, refined by managers' merges and "not a duplicate"."""
import pytest

from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import matcher, store
from dedup.engine.scoring.model import FieldWeights, Model
from dedup.models import ScoringModel, ScoringWeight

SCHEMA = [matcher.FieldSpec("name", c.PERSON_NAME, "full name"), matcher.FieldSpec("company", c.COMPANY_NAME),
          matcher.FieldSpec("phone", c.PHONE)]


def learned_model() -> Model:
    return Model(
        fields=[
            FieldWeights("name", c.PERSON_NAME, [0.80, 0.05, 0.05, 0.02, 0.02, 0.02, 0.04],
                         [0.001, 0.001, 0.002, 0.001, 0.005, 0.01, 0.98]),
            FieldWeights("company", c.COMPANY_NAME, [0.80, 0.05, 0.05, 0.10], [0.01, 0.005, 0.02, 0.965]),
            FieldWeights("phone", c.PHONE, [0.90, 0.02, 0.02, 0.02, 0.04], [0.0005, 0.0001, 0.0004, 0.0095, 0.99]),
        ],
        prior=0.02,
    )


@pytest.mark.django_db
def test_scoring_model_save_stores_every_field_and_level():
    stored = store.scoring_model_save(entity="customer", model=learned_model(), records=1000, candidate_pairs=5000)

    assert stored.prior == pytest.approx(0.02)
    assert ScoringWeight.objects.filter(model=stored).count() == 7 + 4 + 5
    phone_exact = ScoringWeight.objects.get(model=stored, field="phone", level="exact")
    assert (phone_exact.m, phone_exact.u, phone_exact.position) == (pytest.approx(0.9), pytest.approx(0.0005), 0)
    loaded = store.scoring_model_load(entity="customer")
    assert [weights.name for weights in loaded.fields] == ["company", "name", "phone"]
    assert loaded.field("name").m == pytest.approx(learned_model().field("name").m)


@pytest.mark.django_db
def test_scoring_model_save_keeps_the_admins_threshold():
    store.scoring_model_save(entity="customer", model=learned_model())
    ScoringModel.objects.filter(entity="customer").update(threshold=0.97)
    store.scoring_model_save(entity="customer", model=learned_model())
    assert ScoringModel.objects.get(entity="customer").threshold == 0.97


def pair_probability(model: Model, left: dict, right: dict) -> float:
    read = matcher.read_records([left, right], SCHEMA)
    order = [spec.name for spec in SCHEMA]
    model.fields.sort(key=lambda weights: order.index(weights.name))
    probability, _reasons = matcher.explain(model, read, 0, 1)
    return probability


@pytest.mark.django_db
def test_scoring_decisions_fold_a_merge_is_match_evidence():
    # Given a company spelt two ways with the same person's name typed with a typo
    store.scoring_model_save(entity="customer", model=learned_model())
    left = {"name": "Olga Smirnova", "company": "Atlas Retail LLC", "phone": ""}
    right = {"name": "Olga Smirnvoa", "company": "Altas Retail Inc.", "phone": ""}
    before = pair_probability(store.scoring_model_load(entity="customer"), left, right)

    # When managers merge twenty such pairs
    store.scoring_decisions_fold(entity="customer", schema=SCHEMA, pairs=[(left, right, True)] * 20)

    # Then the same kind of pair scores higher, and the model counts the merges
    after = pair_probability(store.scoring_model_load(entity="customer"), left, right)
    assert after > before
    assert ScoringModel.objects.get(entity="customer").merges_folded == 20


@pytest.mark.django_db
def test_scoring_decisions_fold_not_a_duplicate_is_non_match_evidence():
    # Given two records with one name at companies spelt alike
    store.scoring_model_save(entity="customer", model=learned_model())
    left = {"name": "Ivan Petrov", "company": "Vector Trade", "phone": ""}
    right = {"name": "Ivan Petrov", "company": "Vektor Trading", "phone": ""}
    before = pair_probability(store.scoring_model_load(entity="customer"), left, right)

    # When managers say "not a duplicate" of thirty such pairs
    store.scoring_decisions_fold(entity="customer", schema=SCHEMA, pairs=[(left, right, False)] * 30)

    # Then such a pair scores lower
    after = pair_probability(store.scoring_model_load(entity="customer"), left, right)
    assert after < before
    assert ScoringModel.objects.get(entity="customer").not_duplicates_folded == 30


@pytest.mark.django_db
def test_scoring_decisions_fold_without_a_model_does_nothing():
    assert store.scoring_decisions_fold(entity="customer", schema=SCHEMA, pairs=[({}, {}, True)]) is None
    assert not ScoringModel.objects.exists()


@pytest.mark.django_db
def test_scoring_model_admin_shows_weights_read_only_and_saves_the_threshold(admin_client):
    stored = store.scoring_model_save(entity="customer", model=learned_model())
    url = f"/admin/dedup/scoringmodel/{stored.pk}/change/"

    page = admin_client.get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert "+10.8" in text  # phone exact: log2(0.9 / 0.0005)
    assert 'name="weights-0-m"' not in text  # the weights are shown, not editable
    response = admin_client.post(url, {"threshold": "0.97", "weights-TOTAL_FORMS": "0", "weights-INITIAL_FORMS": "0"})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.threshold == 0.97


@pytest.mark.django_db
def test_scoring_model_admin_refuses_a_threshold_that_makes_no_sense(admin_client):
    stored = store.scoring_model_save(entity="customer", model=learned_model())
    response = admin_client.post(f"/admin/dedup/scoringmodel/{stored.pk}/change/",
                                 {"threshold": "1.5", "weights-TOTAL_FORMS": "0", "weights-INITIAL_FORMS": "0"})
    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.threshold == 0.5  # the default, unchanged


@pytest.mark.django_db
def test_scoring_model_save_keeps_the_value_frequencies():
    # Given a learned model with term frequencies and a shared office line
    model = learned_model()
    model.field("name").tf = {"ivan ivanov": 0.02, "olga smirnova": 0.001, "rare pair": 0.0001}
    model.field("name").tf_floor = 0.0001
    model.field("phone").shared = {"+74951234567": 7}

    # When it is stored and read back
    store.scoring_model_save(entity="customer", model=model)
    loaded = store.scoring_model_load(entity="customer")

    # Then the frequent values, the floor and the shared line come back; a value at the floor is not stored
    names = loaded.field("name")
    assert names.tf == {"ivan ivanov": pytest.approx(0.02), "olga smirnova": pytest.approx(0.001)}
    assert names.tf_floor == pytest.approx(0.0001)
    assert loaded.field("phone").shared == {"+74951234567": 7}
    assert names.bayes_factor_log2(0, "ivan ivanov") < names.bayes_factor_log2(0, "somebody rare")


@pytest.mark.django_db
def test_scoring_model_load_reads_damaged_frequencies_as_none():
    store.scoring_model_save(entity="customer", model=learned_model())
    ScoringModel.objects.filter(entity="customer").update(frequencies={"name": {"values": {"x": "many"}}})
    loaded = store.scoring_model_load(entity="customer")
    assert loaded.field("name").tf == {} and loaded.field("name").tf_floor == 0.0


@pytest.mark.django_db
def test_scoring_model_load_a_model_stored_before_a_level_was_added():
    # A model stored when a phone had four levels (no "different_shared"): each level is read by its name, the
    # new level weighs nothing until the model is learned again.
    stored = store.scoring_model_save(entity="customer", model=learned_model())
    ScoringWeight.objects.filter(model=stored, field="phone", level="different_shared").delete()
    ScoringWeight.objects.filter(model=stored, field="phone", level="different").update(position=3)
    phone = store.scoring_model_load(entity="customer").field("phone")
    assert phone.m[c.LEVELS[c.PHONE].index("different")] == pytest.approx(0.04)
    assert phone.u[c.LEVELS[c.PHONE].index("different")] == pytest.approx(0.99)
    assert phone.bayes_factor_log2(c.LEVELS[c.PHONE].index("different_shared")) == 0.0
    assert phone.bayes_factor_log2(c.LEVELS[c.PHONE].index("different")) < -4
