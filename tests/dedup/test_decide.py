"""One decision for every caller (dedup/engine/decide.py): hard rules, the learned model's probability at the
entity's threshold, vetoes and "not a duplicate", as the card, the change-list figures and the warning while
typing see them."""
import pytest
from django.utils import translation

from dedup import registry
from dedup.admin.rule_forms import RuleForm
from dedup.engine import counts
from dedup.engine.finder import duplicate_partners, duplicates_of, duplicates_of_values
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.selectors import typed_duplicates
from dedup.models import Rule
from tests import factories
from tests.dedup.engine_helpers import customer_with, make_rule, pks
from tests.dedup.scored_helpers import learn_customers, name_variant_pair

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules_and_fresh_scorer")]



def test_a_name_variant_at_the_same_company_is_found_only_once_a_model_is_learned():
    # Given "Micheal Smith, Acme LLC" and "Michael Smith, Acme Inc", no phone, no email
    first, second = name_variant_pair()

    # When no model has been learned, the rules alone decide: nothing
    assert list(duplicates_of(first)) == []

    # When the customers' model is learned
    learn_customers()

    # Then the card finds the other, with its probability and why in words
    [match] = duplicates_of(first)
    assert match.pk == second.pk
    assert match.rule is None and match.rules == []
    assert 0.9 <= match.probability < 1
    assert any("% match" in reason for reason in match.reasons)
    assert any(text.startswith("company name: the same") for text in match.why)
    with translation.override("ru"):
        [match_ru] = duplicates_of(first)
        assert any("совпадение" in reason for reason in match_ru.reasons)
    # And the other way round
    assert pks(duplicates_of(second)) == {first.pk}


def test_strangers_at_the_same_company_and_namesakes_elsewhere_are_no_duplicates():
    # Given a learned model, a person, a colleague and a namesake at another company
    learn_customers()
    first, second = name_variant_pair()
    colleague = customer_with("John", "Brown", company=first.company)
    namesake = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Globex"))

    # When the person's duplicates are looked for
    found = duplicates_of(first)

    # Then only the name variant at the same company is one
    assert pks(found) == {second.pk}
    assert colleague.pk not in pks(found) and namesake.pk not in pks(found)


def test_a_hard_rule_still_matches_when_the_score_is_low():
    # Given a learned model and two different names sharing one phone (the default rule "Same phone")
    learn_customers()
    first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    second = customer_with("Olga", "Smirnova", phones=["+7 912 345-67-89"])

    # When the first's duplicates are looked for
    [match] = duplicates_of(first)

    # Then the rule decides, and the low probability is shown beside it
    assert match.pk == second.pk
    assert match.rule is not None and match.rule.name == "Same phone"
    assert match.probability is not None and match.probability < 0.5


def test_a_veto_removes_a_pair_the_score_or_a_hard_rule_would_make():
    # Given a veto "never a duplicate when the date of birth differs" (a custom field)
    learn_customers()
    make_rule("customer", "Different birth date", [("custom:birth_date", "normalized")], kind=Rule.Kind.VETO)
    first, second = name_variant_pair()
    phone_a = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], custom_fields={"birth_date": "1980-01-02"})
    phone_b = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], custom_fields={"birth_date": "1991-05-06"})
    phone_c = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])  # no birth date: no evidence
    for record, birth in ((first, "1970-03-04"), (second, "1975-03-04")):
        record.custom_fields = {"birth_date": birth}
        record.save()

    # Then the scored pair with different birth dates is ruled out
    assert duplicates_of(first) == []
    # And so is the hard rule's pair, while a record without a birth date still matches both
    assert pks(duplicates_of(phone_a)) == {phone_c.pk}
    assert pks(duplicates_of(phone_c)) == {phone_a.pk, phone_b.pk}
    assert duplicate_partners(type(phone_a), [phone_a.pk, phone_b.pk]) == {phone_a.pk: {phone_c.pk},
                                                                           phone_b.pk: {phone_c.pk}}

    # When the veto is switched off, both pairs are duplicates again
    Rule.objects.filter(kind=Rule.Kind.VETO).update(active=False)
    assert pks(duplicates_of(first)) == {second.pk}
    assert pks(duplicates_of(phone_a)) == {phone_b.pk, phone_c.pk}


def test_not_a_duplicate_still_hides_a_scored_pair():
    learn_customers()
    first, second = name_variant_pair()
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk))
    assert duplicates_of(first) == []
    assert duplicates_of(second) == []


def test_the_review_threshold_decides():
    # Given the pair and a threshold above its probability
    first, second = name_variant_pair()
    learn_customers(threshold=0.9999)

    # Then it is not a duplicate; at the default threshold it is
    assert duplicates_of(first) == []
    learn_customers(threshold=0.9)
    assert pks(duplicates_of(first)) == {second.pk}


def test_duplicates_of_with_a_learned_model_takes_at_most_four_queries(django_assert_max_num_queries):
    # Given a learned model, the pair, a phone duplicate and colleagues at the same company
    learn_customers()
    first, second = name_variant_pair()
    first_phone = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"], company=first.company)
    customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    for index in range(8):
        customer_with(f"Person{index}", f"Colleague{index}", company=first.company)
    duplicates_of(first)  # the weights are read once per process

    # When the duplicates are looked for again
    with django_assert_max_num_queries(4):
        found = duplicates_of(first)
    with django_assert_max_num_queries(4):
        found_phone = duplicates_of(first_phone)

    # Then the scored one is there, and the phone rule still works
    assert pks(found) == {second.pk}
    assert len(found_phone) == 1


def test_the_stored_figures_and_the_filter_count_scored_pairs(django_capture_on_commit_callbacks):
    # Given a learned model and a customer saved
    learn_customers()
    first = customer_with("Micheal", "Smith", company=factories.CompanyFactory(name="Acme LLC"))

    # When its name variant is saved (the figures are refreshed once the transaction commits)
    with django_capture_on_commit_callbacks(execute=True):
        second = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Acme Inc"))

    # Then both are counted and both pass the "Has duplicates" filter
    model = type(first)
    assert counts.stored_counts(model, [first.pk, second.pk]) == {first.pk: 1, second.pk: 1}
    assert set(counts.with_stored_duplicates(model.objects.all()).values_list("pk", flat=True)) == {first.pk, second.pk}

    # And a rebuild (a scan, a rule change) gives the same figures
    counts.counts_rebuild(entity="customer")
    assert counts.stored_counts(model, [first.pk, second.pk]) == {first.pk: 1, second.pk: 1}

    # When the second's company changes to another one, the pair goes, on both sides
    with django_capture_on_commit_callbacks(execute=True):
        second.company = factories.CompanyFactory(name="Globex")
        second.save()
    assert counts.stored_counts(model, [first.pk, second.pk]) == {first.pk: 0, second.pk: 0}


def test_data_not_saved_yet_and_the_warning_while_typing_find_scored_matches():
    learn_customers()
    first, _second = name_variant_pair()

    found = duplicates_of_values("customer", values={"full_name": ["Michael Smith"], "company_name": ["ACME, Inc."]})
    assert first.pk in pks(found)

    typed = typed_duplicates(
        registry.get("customer"),
        inputs={"first_name": ["Mike"], "last_name": ["Smith"], "company__name": ["Acme Inc"]},
    )
    assert first.pk in {item.pk for item in typed}
    item = next(item for item in typed if item.pk == first.pk)
    assert any("% match" in reason and "company name" in reason for reason in item.reasons)


def test_rule_form_refuses_a_veto_without_conditions_and_offers_the_kind(admin_client):
    from django.urls import reverse

    response = admin_client.get(reverse("admin:dedup_rule_add"))
    assert response.status_code == 200
    assert b'name="kind"' in response.content
    form = RuleForm(data={"entity": "customer", "name": "Veto", "active": True, "position": 0, "kind": "veto"})
    assert form.is_valid(), form.errors  # the conditions are the inline's; it checks their number
    nonsense = RuleForm(data={"entity": "customer", "name": "Veto", "active": True, "position": 0, "kind": "veto",
                              "auto_merge": True})
    assert not nonsense.is_valid() and "auto_merge" in nonsense.errors

    # A veto saved without a condition is refused by the page, like any rule
    response = admin_client.post(reverse("admin:dedup_rule_add"), {
        "entity": "customer", "name": "Empty veto", "kind": "veto", "active": "on", "position": 0,
        "conditions-TOTAL_FORMS": 0, "conditions-INITIAL_FORMS": 0, "conditions-MIN_NUM_FORMS": 0,
        "conditions-MAX_NUM_FORMS": 1000,
    })
    assert response.status_code == 200
    assert not Rule.objects.filter(name="Empty veto").exists()


def test_a_nonsense_threshold_is_a_form_error(admin_client):
    from django.urls import reverse

    stored = learn_customers()
    response = admin_client.post(reverse("admin:dedup_scoringmodel_change", args=[stored.pk]), {"threshold": "7"})
    assert response.status_code == 200  # the form again, with the error
    stored.refresh_from_db()
    assert stored.threshold == 0.9


def test_the_card_list_the_change_list_and_the_filter_show_a_scored_pair(
    admin_client, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    # Given a learned model and the name-variant pair saved (figures refreshed on commit)
    learn_customers()
    with django_capture_on_commit_callbacks(execute=True):
        first, second = name_variant_pair()
        alone = customer_with("Olga", "Sidorova")

    # When the card's duplicates list is opened, it lists the other with its probability and why
    page = admin_client.get(reverse("admin:crm_customer_duplicates", args=[first.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert reverse("admin:crm_customer_change", args=[second.pk]) in html
    assert "% match" in html

    # And the change list counts it and the filter keeps the pair only
    changelist = reverse("admin:crm_customer_changelist")
    listed = admin_client.get(changelist).content.decode()
    assert listed.count('class="dedup-count-link"') == 2
    with_dupes = admin_client.get(changelist, {"has_duplicates": "yes"})
    assert {c.pk for c in with_dupes.context["cl"].result_list} == {first.pk, second.pk}
    without = admin_client.get(changelist, {"has_duplicates": "no"})
    assert [c.pk for c in without.context["cl"].result_list] == [alone.pk]


def test_a_threshold_change_in_the_admin_rebuilds_the_stored_figures(admin_client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    # Given the pair counted as duplicates by the learned model
    stored = learn_customers()
    with django_capture_on_commit_callbacks(execute=True):
        first, second = name_variant_pair()
    model = type(first)
    assert counts.stored_counts(model, [first.pk, second.pk]) == {first.pk: 1, second.pk: 1}

    # When an admin raises the review threshold above the pair's probability
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:dedup_scoringmodel_change", args=[stored.pk]), {
            "threshold": "0.9999", "weights-TOTAL_FORMS": "0", "weights-INITIAL_FORMS": "0",
        })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""

    # Then the figures are rebuilt: the pair is no longer counted
    assert counts.stored_counts(model, [first.pk, second.pk]) == {first.pk: 0, second.pk: 0}


def test_a_veto_has_no_preview_of_groups_and_is_no_duplicate_rule():
    from dedup.engine import rules as engine_rules
    from dedup.engine.selectors import rule_preview

    veto = make_rule("customer", "Different birth date", [("custom:birth_date", "normalized")], kind=Rule.Kind.VETO)
    customer_with("Ivan", "Petrov", custom_fields={"birth_date": "1980-01-02"})
    customer_with("Ivan", "Petrov", custom_fields={"birth_date": "1980-01-02"})
    assert rule_preview(veto) is None
    compiled = engine_rules.active_rules("customer")
    assert veto.pk not in {rule.id for rule in compiled}
    assert [rule.id for rule in compiled.vetoes] == [veto.pk]
