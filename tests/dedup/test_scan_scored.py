"""The daily scan's scored pass (dedup/engine/scan_scored.py): groups by the learned model next to the rule groups,
never chaining strangers, obeying vetoes and "not a duplicate"; the model learned when none is stored."""
import pytest
from django.urls import reverse

from crm.models import Customer
from dedup import review
from dedup.engine import scan_scored
from dedup.engine.finder import duplicates_of
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.scoring.learned import learned_cache_clear
from dedup.models import DuplicateGroup, Rule, ScanRun, ScoringModel
from tests import factories
from tests.dedup.engine_helpers import customer_with, make_rule
from tests.dedup.scored_helpers import learn_customers, name_variant_pair

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_and_fresh_scorer")]



@pytest.fixture
def run_scan(django_capture_on_commit_callbacks):
    def run(**kwargs) -> ScanRun:
        with django_capture_on_commit_callbacks(execute=True):
            started = review.scan_start(trigger=ScanRun.Trigger.SCHEDULE, **kwargs)
        started.refresh_from_db()
        return started

    return run


def learned_for_this_base():
    """The hand-set customer model, stored as learned now on this very base (so the scan does not learn again)."""
    stored = learn_customers()
    ScoringModel.objects.filter(pk=stored.pk).update(records=Customer.objects.filter(is_archived=False).count())
    learned_cache_clear()


def open_groups():
    return DuplicateGroup.objects.filter(entity="customer", status=DuplicateGroup.Status.OPEN)


def member_sets() -> set[frozenset]:
    return {frozenset(group.members.values_list("record_id", flat=True)) for group in open_groups()}


def test_the_scan_groups_a_pair_no_rule_finds_and_the_queue_shows_its_probability(run_scan, admin_client):
    # Given the name-variant pair (no phone, no email) and a model learned on this base
    first, second = name_variant_pair()
    customer_with("John", "Brown", company=first.company)
    learned_for_this_base()

    # When the daily scan runs
    run = run_scan(entities=["customer"])

    # Then its scored pass was one more chunk, and the pair is a group of the review queue with its probability
    assert run.status == ScanRun.Status.DONE
    assert any((chunk.key_range or {}).get("scored") for chunk in run.chunks.all())
    assert member_sets() == {frozenset({first.pk, second.pk})}
    group = open_groups().get()
    response = admin_client.get(reverse("admin:dedup_duplicategroup_change", args=[group.pk]))
    assert response.status_code == 200
    assert "% match" in response.content.decode()


def test_no_chaining_a_strong_link_to_one_member_of_a_pair_does_not_join_it(run_scan):
    # Given A ~ B (a name variant at one company), B ~ C (one phone and one name, another company), A and C
    # different (other companies, no shared contact)
    a = customer_with("Micheal", "Smith", company=factories.CompanyFactory(name="Acme LLC"))
    b = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Acme Inc"), phones=["+7 912 000-11-22"])
    c = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Globex"), phones=["+7 912 000-11-22"])
    learned_for_this_base()

    # When the scored pass groups them
    groups = scan_scored.scored_groups("customer")

    # Then average linkage keeps A out: its link to B is strong, to C weak, so its average to {B, C} is below 1/2
    assert [group.ids for group in groups] == [sorted([b.pk, c.pk])]
    # (the card agrees: A's only duplicate is B)
    [match] = duplicates_of(a)
    assert match.pk == b.pk and match.probability >= 0.9

    # And the scan's groups (rules and score together) are {B, C} alone, not one group of three
    run_scan(entities=["customer"])
    assert member_sets() == {frozenset({b.pk, c.pk})}


def test_a_veto_splits_the_groups_of_rules_and_of_the_score(run_scan):
    # Given a veto on a different birth date, the scored pair with different birth dates, and a phone trio of
    # which two have different birth dates
    make_rule("customer", "Different birth date", [("custom:birth_date", "normalized")], kind=Rule.Kind.VETO)
    first, second = name_variant_pair()
    for record, birth in ((first, "1970-03-04"), (second, "1975-03-04")):
        record.custom_fields = {"birth_date": birth}
        record.save()
    p1 = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], custom_fields={"birth_date": "1980-01-02"})
    p2 = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], custom_fields={"birth_date": "1991-05-06"})
    learned_for_this_base()

    # When the scan runs
    run_scan(entities=["customer"])

    # Then neither pair is a group
    assert member_sets() == set()
    assert p1.pk != p2.pk


def test_not_a_duplicate_keeps_a_scored_pair_out_of_the_queue(run_scan):
    first, second = name_variant_pair()
    learned_for_this_base()
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk))
    run_scan(entities=["customer"])
    assert member_sets() == set()


def test_the_scan_learns_a_model_when_none_is_stored(run_scan):
    # Given a base of customers large enough to learn from, with name-variant duplicates, and no model
    companies = [factories.CompanyFactory(name=f"Firm{index} LLC") for index in range(12)]
    for index, company in enumerate(companies):
        customer_with(["Michael", "Stephen", "Jonathan"][index % 3], f"Surname{index}", company=company)
        customer_with(["Micheal", "Steven", "Jonathon"][index % 3], f"Surname{index}", company=company)
        customer_with(f"Other{index}", f"Person{index}", company=company, phones=[f"+7 912 100-00-{index:02d}"])
    assert not ScoringModel.objects.exists()

    # When the scan runs
    run = run_scan(entities=["customer"])

    # Then a model was learned from the base and stored, and the scan finished
    assert run.status == ScanRun.Status.DONE
    stored = ScoringModel.objects.get(entity="customer")
    assert stored.records == 36 and stored.learned_at is not None
    assert stored.weights.exists()
