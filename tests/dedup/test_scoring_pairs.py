"""The learned model's probability and why of the pairs the screens show (dedup/engine/scoring/pairs.py), and
managers' decisions folded into it (dedup/engine/scoring/decisions.py)."""
import re

import pytest
from django.urls import reverse
from django.utils import translation

from dedup import review
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import store
from dedup.engine.scoring.learned import learned_cache_clear
from dedup.engine.scoring.model import FieldWeights, Model
from dedup.engine.scoring.pairs import pair_scores
from dedup.merge import merge_job_create
from dedup.models import DuplicateGroup, ScoringModel, ScoringWeight
from tests.dedup.engine_helpers import customer_with, ensure_default_rules

pytestmark = pytest.mark.django_db

BADGE = re.compile(r'class="dedup-match-badge"[^>]*>(\d+)% match<')
BADGE_RU = re.compile(r'class="dedup-match-badge"[^>]*>совпадение (\d+)%<')


@pytest.fixture(autouse=True)
def fresh_cache():
    learned_cache_clear()
    ensure_default_rules()
    yield
    learned_cache_clear()


def customer_model(phone_m: float = 0.9) -> Model:
    """A learned customer model: a shared phone and the same name are strong evidence, a different name is not."""
    return Model(
        fields=[
            FieldWeights("phone", c.PHONE, [phone_m, 0.02, 0.02, 0.01, 1 - phone_m - 0.05],
                         [0.0005, 0.0001, 0.0004, 0.0095, 0.99]),
            FieldWeights("email", c.EMAIL, [0.9, 0.05, 0.02, 0.03], [0.0005, 0.0001, 0.0004, 0.999]),
            FieldWeights("full_name", c.PERSON_NAME, [0.80, 0.05, 0.05, 0.02, 0.02, 0.02, 0.04],
                         [0.001, 0.001, 0.002, 0.001, 0.005, 0.01, 0.98]),
        ],
        prior=0.01,
    )


def learn():
    store.scoring_model_save(entity="customer", model=customer_model())


def trio():
    current = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    same = customer_with("Ivan", "Petrov", phones=["8 (912) 345-67-89"])
    stranger = customer_with("Olga", "Smirnova", phones=["+7 912 345-67-89"])
    return current, same, stranger


# --- The selector ------------------------------------------------------------------------------------------


def test_pair_scores_none_without_a_learned_model():
    current, same, _stranger = trio()
    assert pair_scores("customer", current, [same]) is None


def test_pair_scores_gives_probability_and_why_with_a_learned_model():
    # Given a learned customer model and a record with a namesake sharing its phone, and a stranger sharing it
    learn()
    current, same, stranger = trio()

    # When the pairs are scored
    scores = pair_scores("customer", current, [same, stranger])

    # Then the namesake is a likely match and the stranger less so, each with its fields' contributions
    assert set(scores) == {same.pk, stranger.pk}
    assert scores[same.pk].probability > 0.99 and scores[same.pk].badge() == "99% match"
    assert scores[stranger.pk].probability < scores[same.pk].probability
    why = scores[same.pk].why()
    assert any(line.startswith("phone: the same (") and "for a match" in line for line in why)
    assert any(line.startswith("full name: the same") for line in why)
    assert "email: missing on one side, no evidence" in why
    assert any(line.startswith("full name: different") and "against a match" in line
               for line in scores[stranger.pk].why())
    # and in Russian for a Russian reader
    with translation.override("ru"):
        assert scores[same.pk].badge() == "совпадение 99%"
        assert any(line.startswith("телефон: совпадает") for line in scores[same.pk].why())


def test_pair_scores_queries_do_not_grow_with_candidates(django_assert_max_num_queries):
    # Given a learned model (already read once by this process) and 2 or 12 candidates loaded by the caller
    learn()
    current = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], emails=["ivan@example.com"])
    others = [customer_with("Ivan", "Petrov", phones=[f"+7 912 345-67-{n:02d}"]) for n in range(12)]
    pair_scores("customer", current, others[:1])

    # Then scoring costs the model's stamp plus one query per relation read, whatever the number of candidates
    for count in (2, 12):
        fresh = type(current).objects.in_bulk([current.pk, *(other.pk for other in others[:count])])
        with django_assert_max_num_queries(5):
            scores = pair_scores("customer", fresh[current.pk], [fresh[o.pk] for o in others[:count]])
        assert len(scores) == count


def test_pair_scores_reloads_the_model_after_it_changes():
    # Given a model read once, then relearned with a phone that says much less
    learn()
    current, same, _stranger = trio()
    before = pair_scores("customer", current, [same])[same.pk].probability
    store.scoring_model_save(entity="customer", model=Model(fields=customer_model().fields[:1], prior=0.0001))

    # Then the next request uses the new weights (the cache is keyed on the model's id and update time)
    after = pair_scores("customer", current, [same])[same.pk]
    assert after.probability < before
    assert [reason.field for reason in after.reasons] == ["phone"]


# --- The screens -------------------------------------------------------------------------------------------


def card_list(client, record, **headers):
    url = reverse("admin:crm_customer_duplicates", args=[record.pk])
    return client.get(url, {"fragment": 1}, **headers).content.decode()


def compare(client, current, *others, **headers):
    url = reverse("admin:crm_customer_compare", args=[current.pk])
    pks = [current.pk, *(other.pk for other in others)]
    return client.get(url, {"records": pks, "priority": current.pk}, **headers).content.decode()


def test_card_list_shows_the_probability_in_english_and_russian(admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        current, same, _stranger = trio()
    assert "dedup-match-badge" not in card_list(admin_client, current)  # no model learned: no probability

    learn()
    html = card_list(admin_client, current)
    assert BADGE.findall(html) and "phone: the same (" in html
    russian = card_list(admin_client, current, HTTP_ACCEPT_LANGUAGE="ru")
    assert BADGE_RU.findall(russian) and "телефон: совпадает" in russian


def test_compare_screen_shows_the_probability_in_english_and_russian(admin_client):
    current, same, stranger = trio()
    assert "dedup-match-badge" not in compare(admin_client, current, same)

    learn()
    html = compare(admin_client, current, same, stranger)
    # one badge per record compared with the priority record, none on the priority itself
    assert len(BADGE.findall(html)) == 2 and BADGE.findall(html)[0] == "99"
    assert "full name: different" in html
    russian = compare(admin_client, current, same, HTTP_ACCEPT_LANGUAGE="ru")
    assert BADGE_RU.findall(russian) == ["99"] and "полное имя: совпадает" in russian


def test_queue_group_page_shows_the_probability_in_english_and_russian(
    admin_client, django_capture_on_commit_callbacks
):
    first, second, _stranger = trio()
    with django_capture_on_commit_callbacks(execute=True):
        review.scan_start()
    group = DuplicateGroup.objects.get(members__record_id=second.pk)
    url = reverse("admin:dedup_duplicategroup_change", args=[group.pk])
    assert "dedup-match-badge" not in admin_client.get(url).content.decode()

    learn()
    html = admin_client.get(url).content.decode()
    assert "match probability" in html and len(BADGE.findall(html)) == group.size - 1
    russian = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert len(BADGE_RU.findall(russian)) == group.size - 1 and "телефон: совпадает" in russian


# --- Managers' decisions fold into the model ---------------------------------------------------------------


def test_merge_folds_the_records_values_before_the_merge_into_the_model(
    admin_user, django_capture_on_commit_callbacks
):
    # Given a learned model and a manager merging a namesake whose phone differs (a typo'd name would do too)
    learn()
    current = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    other = customer_with("Ivan", "Petrov", phones=["+7 912 000-00-01"])
    phone_different_m = ScoringWeight.objects.get(field="phone", level="different").m

    # When the merge job runs (the task folds the decision after the commit)
    with django_capture_on_commit_callbacks(execute=True):
        merge_job_create(user=admin_user, survivor=current, absorbed=[other])

    # Then the model counts one merge, and "different phones" became likelier among true matches: the absorbed
    # record's own phone was read before the merge moved it to the survivor
    stored = ScoringModel.objects.get(entity="customer")
    assert (stored.merges_folded, stored.not_duplicates_folded) == (1, 0)
    assert ScoringWeight.objects.get(field="phone", level="different").m > phone_different_m


def test_not_duplicate_folds_into_the_model_and_nothing_without_a_model(
    admin_user, django_capture_on_commit_callbacks
):
    current, same, stranger = trio()
    # Without a learned model a decision is only stored
    with django_capture_on_commit_callbacks(execute=True):
        not_duplicate_mark(entity="customer", pair=(current.pk, stranger.pk), user=admin_user)
    assert not ScoringModel.objects.exists()

    # With one, a manager's "not a duplicate" makes a shared phone likelier among non-matches
    learn()
    phone_exact_u = ScoringWeight.objects.get(field="phone", level="exact").u
    with django_capture_on_commit_callbacks(execute=True):
        not_duplicate_mark(entity="customer", pair=(current.pk, same.pk), user=admin_user)
    stored = ScoringModel.objects.get(entity="customer")
    assert (stored.merges_folded, stored.not_duplicates_folded) == (0, 1)
    assert ScoringWeight.objects.get(field="phone", level="exact").u > phone_exact_u


# --- Term frequencies stored with the model --------------------------------------------------------------------


def test_pair_scores_weigh_a_rare_surname_more_than_a_common_one():
    # Given a learned model whose stored frequencies say "ivan petrov" is held by 1 in 100 records and any name
    # not listed is rare (1 in 100,000)
    model = customer_model()
    names = model.field("full_name")
    names.tf = {"ivan petrov": 0.01}
    names.tf_floor = 0.00001
    store.scoring_model_save(entity="customer", model=model)
    current = customer_with("Ivan", "Petrov")
    namesake = customer_with("Ivan", "Petrov")
    rare = customer_with("Evlampiy", "Zaitsev")
    rare_twin = customer_with("Evlampiy", "Zaitsev")

    # When the screens score both pairs (with the model read back from the database)
    learned_cache_clear()
    common = pair_scores("customer", current, [namesake])[namesake.pk]
    rarer = pair_scores("customer", rare, [rare_twin])[rare_twin.pk]

    # Then agreeing on the rare name counts log2(0.01 / 0.00001) ~ 10 bits more, and the why says which is which
    assert rarer.reasons[0].weight - common.reasons[0].weight == pytest.approx(10, abs=0.1)
    assert "full name: the same, a common value" in common.why_text()
    assert "full name: the same, a rare value" in rarer.why_text()


def test_pair_scores_a_shared_phone_weighs_little_unless_the_names_agree():
    # Given a stored model where one phone is an office line of ten people
    model = customer_model()
    model.field("phone").shared = {"+74951234567": 10}
    store.scoring_model_save(entity="customer", model=model)
    current = customer_with("Ivan", "Petrov", phones=["+7 495 123-45-67"])
    colleague = customer_with("Olga", "Smirnova", phones=["+7 495 123-45-67"])
    same = customer_with("Ivan", "Petrov", phones=["8 495 123 45 67"])

    # When the screens score the pairs
    learned_cache_clear()
    scores = pair_scores("customer", current, [colleague, same])

    # Then the colleague gets almost nothing from the line, the same person its full weight
    phone_weight = {pk: next(r.weight for r in score.reasons if r.field == "phone") for pk, score in scores.items()}
    assert phone_weight[colleague.pk] < 0.2
    assert phone_weight[same.pk] > 10
