"""The rules admin ("Duplicate control"): list, add with conditions, validation, stage warning, preview."""
import pytest
from django.urls import reverse

from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.models import Condition, NotDuplicate, Rule
from tests.dedup.engine_helpers import customer_with, ensure_default_rules

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def rule_post(entity="customer", name="Rule", conditions=(), **fields):
    data = {
        "entity": entity,
        "name": name,
        "active": "on",
        "position": "0",
        "must_equal": "",
        "conditions-TOTAL_FORMS": str(len(conditions)),
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "1",
        "conditions-MAX_NUM_FORMS": "1000",
    }
    for index, condition in enumerate(conditions):
        data[f"conditions-{index}-field"] = condition["field"]
        data[f"conditions-{index}-method"] = condition.get("method", "normalized")
        data[f"conditions-{index}-threshold"] = condition.get("threshold", "")
        data[f"conditions-{index}-position"] = str(index)
        if condition.get("fold_email"):
            data[f"conditions-{index}-fold_email"] = "on"
    data.update(fields)
    return data


def test_rule_admin_lists_the_rules_of_every_entity(admin_client):
    # Given the default rules
    # When the admin opens "Duplicate rules"
    response = admin_client.get(reverse("admin:dedup_rule_changelist"))

    # Then they are listed with their conditions
    assert response.status_code == 200
    content = response.content.decode()
    assert "Same full name and company" in content
    assert "full name: normalised and company name: normalised" in content
    assert "open stages" in content


def test_rule_admin_add_page_offers_fields_grouped_by_entity(admin_client):
    # When the add page is opened
    response = admin_client.get(reverse("admin:dedup_rule_add"))

    # Then conditions offer each entity's fields, custom fields included, and stages are grouped by pipeline
    content = response.content.decode()
    assert response.status_code == 200
    assert 'value="customer:phone"' in content
    assert 'value="company:tax_id"' in content
    assert 'id="dedup-rule-config"' in content


def test_rule_admin_adds_a_rule_and_shows_what_it_flags(admin_client):
    # Given two records of one person with one email and a custom "inn" field
    first = customer_with("Ivan", "Petrov", emails=["ivan@example.com"], custom_fields={"inn": "7701"})
    second = customer_with("Ivan", "Petrov", emails=["IVAN@example.com"], custom_fields={"inn": "7701"})

    # When the admin adds a rule "same email AND same INN"
    response = admin_client.post(
        reverse("admin:dedup_rule_add"),
        rule_post(name="Email and INN", conditions=[{"field": "customer:email"}, {"field": "customer:custom:inn"}]),
    )

    # Then it is saved with both conditions, and its page opens with what it flags and a sample with links
    rule = Rule.objects.get(name="Email and INN")
    assert list(rule.conditions.values_list("field", "method")) == [("email", "normalized"), ("custom:inn", "normalized")]
    assert response.status_code == 302
    assert response.url == reverse("admin:dedup_rule_change", args=[rule.pk])
    page = admin_client.get(response.url).content.decode()
    assert "This rule alone flags 2 customers in 1 group of duplicates." in page
    for record in (first, second):
        assert f'<a href="{reverse("admin:crm_customer_change", args=[record.pk])}">Petrov Ivan</a>' in page
    assert "same email ivan@example.com + same inn 7701" in page


def test_rule_admin_refuses_a_field_of_another_entity(admin_client):
    # When a customer rule is posted with the tax id of companies
    response = admin_client.post(
        reverse("admin:dedup_rule_add"), rule_post(name="Bad", conditions=[{"field": "company:tax_id"}])
    )

    # Then it is refused with the reason, and nothing is saved
    assert response.status_code == 200
    assert "This is not a field of customers" in response.content.decode()
    assert not Rule.objects.filter(name="Bad").exists()


def test_rule_admin_threshold_only_for_fuzzy(admin_client):
    # When a normalised condition comes with a threshold, and a fuzzy one without
    with_threshold = admin_client.post(
        reverse("admin:dedup_rule_add"),
        rule_post(name="Bad1", conditions=[{"field": "customer:phone", "threshold": "80"}]),
    )
    without_threshold = admin_client.post(
        reverse("admin:dedup_rule_add"),
        rule_post(name="Bad2", conditions=[{"field": "customer:full_name", "method": "fuzzy"}]),
    )
    fuzzy_phone = admin_client.post(
        reverse("admin:dedup_rule_add"),
        rule_post(name="Bad3", conditions=[{"field": "customer:phone", "method": "fuzzy", "threshold": "90"}]),
    )

    # Then each is refused with its reason
    assert "A threshold applies only to the fuzzy method" in with_threshold.content.decode()
    assert "A fuzzy condition needs a similarity threshold" in without_threshold.content.decode()
    assert "cannot be compared by similarity" in fuzzy_phone.content.decode()
    assert not Rule.objects.filter(name__startswith="Bad").exists()


def test_rule_admin_needs_a_condition(admin_client):
    # When a rule without conditions is posted
    response = admin_client.post(reverse("admin:dedup_rule_add"), rule_post(name="Empty", conditions=[]))

    # Then it is refused
    assert response.status_code == 200
    assert not Rule.objects.filter(name="Empty").exists()


def test_rule_admin_warns_when_won_or_lost_stages_are_chosen(admin_client, lead_pipeline):
    # Given the lead stages
    stages = {stage.name: stage for stage in lead_pipeline.stages.all()}

    # When a lead rule is saved with the "New" and "Won" stages
    data = rule_post(entity="lead", name="Phone in New and Won", conditions=[{"field": "lead:phone"}])
    response = admin_client.post(
        reverse("admin:dedup_rule_add"), {**data, "stage_ids": [stages["New"].pk, stages["Won"].pk]}, follow=True
    )

    # Then it is saved, with a warning that repeat sales will be lost
    rule = Rule.objects.get(name="Phone in New and Won")
    assert rule.stage_ids == sorted([stages["New"].pk, stages["Won"].pk])
    messages = [str(message) for message in response.context["messages"]]
    assert any("won or lost stages" in message and "Incoming: Won" in message for message in messages)


def test_rule_admin_refuses_stages_for_customers_and_foreign_must_equal(admin_client, lead_pipeline):
    # When a customer rule gets a stage, and a lead rule a must-be-equal field of deals
    stage = lead_pipeline.stages.get(name="New")
    with_stage = admin_client.post(
        reverse("admin:dedup_rule_add"),
        {**rule_post(name="Bad stage", conditions=[{"field": "customer:phone"}]), "stage_ids": [stage.pk]},
    )
    with_equal = admin_client.post(
        reverse("admin:dedup_rule_add"),
        rule_post(entity="lead", name="Bad equal", conditions=[{"field": "lead:phone"}], must_equal="deal:service"),
    )

    # Then both are refused
    assert "Only leads and deals have stages" in with_stage.content.decode()
    assert "cannot be required to have an equal" in with_equal.content.decode()
    assert not Rule.objects.filter(name__startswith="Bad").exists()


def test_rule_admin_change_page_for_a_rule_that_flags_nothing(admin_client):
    # Given the default email rule and no customers
    rule = Rule.objects.get(entity="customer", name="Same email")

    # When its page is opened
    response = admin_client.get(reverse("admin:dedup_rule_change", args=[rule.pk]))

    # Then it says the rule flags nobody, with the conditions editable inline
    content = response.content.decode()
    assert response.status_code == 200
    assert "This rule flags no customers today." in content
    assert 'value="customer:email" selected' in content


def test_rule_admin_edit_changes_a_condition(admin_client):
    # Given the default phone rule of customers
    rule = Rule.objects.get(entity="customer", name="Same phone")
    condition = rule.conditions.get()
    data = rule_post(name="Same phone", conditions=[{"field": "customer:phone", "method": "exact"}])
    data.update({"conditions-INITIAL_FORMS": "1", "conditions-0-id": str(condition.pk), "conditions-0-rule": str(rule.pk)})

    # When the admin switches it to exact comparison
    response = admin_client.post(reverse("admin:dedup_rule_change", args=[rule.pk]), data)

    # Then the condition is changed
    assert response.status_code == 302
    assert Condition.objects.get(pk=condition.pk).method == "exact"


def test_not_duplicate_admin_lists_and_forgets_pairs(admin_client):
    # Given a pair marked as not duplicates
    first, second = customer_with("Ivan", "Petrov"), customer_with("Ivan", "Petrov")
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk), user=None)
    pair = NotDuplicate.objects.get()

    # When the admin lists the pairs and deletes this one
    listing = admin_client.get(reverse("admin:dedup_notduplicate_changelist"))
    admin_client.post(reverse("admin:dedup_notduplicate_delete", args=[pair.pk]), {"post": "yes"})

    # Then it was listed with both records, and is forgotten
    assert f"#{first.pk}" in listing.content.decode()
    assert not NotDuplicate.objects.exists()


def test_rule_admin_change_page_queries_do_not_grow_with_the_base(admin_client, django_assert_max_num_queries):
    # Given the phone rule and many customers with duplicates by phone
    rule = Rule.objects.get(entity="customer", name="Same phone")
    for index in range(25):
        for _copy in range(2):
            customer_with("Ivan", f"Petrov{index}", phones=[f"+7912000{index:04d}"])

    # When its page (with what it flags) is opened (27 queries on PostgreSQL whether 25 or 60 groups: the rule's
    # index rebuilds and its kind's veto fields are read too)
    with django_assert_max_num_queries(28):
        response = admin_client.get(reverse("admin:dedup_rule_change", args=[rule.pk]))

    # Then the page shows all 25 groups counted, in a number of queries independent of the base
    assert "This rule alone flags 50 customers in 25 groups of duplicates." in response.content.decode()
