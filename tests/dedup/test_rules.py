"""Rules as the admin configures them: AND inside a rule, OR between rules, methods, stages, must-be-equal."""
import pytest

from crm.models import Customer, Stage
from dedup.engine import keys, rules
from dedup.engine.finder import duplicates_of
from dedup.engine.rules import CompiledCondition, CompiledRule, RecordKeys
from dedup.models import Condition, Rule
from dedup.registry import MatchField
from tests import factories
from tests.dedup.engine_helpers import DEFAULT_RULES, customer_with, ensure_default_rules, lead_with, only_rules, pks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def test_default_rules_cover_every_entity():
    # Given the rules the migration created
    configured = {
        (rule.entity, rule.name, tuple((c.field, c.method) for c in rule.conditions.all()))
        for rule in Rule.objects.prefetch_related("conditions")
    }

    # Then customers and leads have phone, email, name + company and messenger; companies and orders theirs
    for entity, name, conditions, _must_equal in DEFAULT_RULES:
        assert (entity, name, tuple(conditions)) in configured
    customer_rules = {name for entity, name, _c, _m in DEFAULT_RULES if entity == "customer"}
    assert customer_rules == {"Same phone", "Same email", "Same full name and company", "Same messenger"}
    assert Rule.objects.get(entity="deal").must_equal == "service"
    assert not Rule.objects.filter(auto_merge=True).exists()


def test_rules_conditions_of_a_rule_are_and_ed():
    # Given the default rule "same full name and company" (and the others, which these records do not meet)
    acme, globex = factories.CompanyFactory(name="Acme LLC"), factories.CompanyFactory(name="Globex")
    ivan = customer_with("Ivan", "Petrov", company=acme)
    same_name_other_company = customer_with("Ivan", "Petrov", company=globex)
    same_both = customer_with("PETROV", "Ivan", company=factories.CompanyFactory(name="ACME, Inc."))

    # When the duplicates of the first are looked for
    matches = duplicates_of(ivan)

    # Then only the record meeting both conditions is a duplicate
    assert pks(matches) == {same_both.pk}
    assert same_name_other_company.pk not in pks(matches)
    assert matches[0].reasons == ["same full name Ivan PETROV + same company name ACME, Inc."]


def test_rules_of_an_entity_are_or_ed():
    # Given one customer sharing a phone with a second and an email with a third
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"])
    by_phone = customer_with("Maria", "Sidorova", phones=["8 (912) 345-67-89"])
    by_email = customer_with("Oleg", "Smirnov", emails=["IVAN@example.com"])
    customer_with("Nobody", "Else", phones=["+79990001122"])

    # When its duplicates are looked for
    matches = duplicates_of(first)

    # Then either rule is enough
    assert pks(matches) == {by_phone.pk, by_email.pk}


def test_rules_inactive_rule_does_not_match():
    # Given two customers sharing only a phone, found by the phone rule
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    second = customer_with("Maria", "Sidorova", phones=["+79123456789"])
    assert pks(duplicates_of(first)) == {second.pk}

    # When the phone rule is switched off and the duplicates are looked for again
    Rule.objects.filter(entity="customer", name="Same phone").update(active=False)

    # Then there are none
    assert duplicates_of(first) == []


def test_rules_exact_versus_normalised_method():
    # Given one person's email typed three ways, and an exact-email rule
    only_rules("customer", ("Email as typed", [("email", Condition.Method.EXACT)]))
    first = customer_with("Ivan", "Petrov", emails=["Ivan@Example.com"])
    upper = customer_with("Ivan", "Petrov", emails=["IVAN@EXAMPLE.COM"])
    same = customer_with("Ivan", "Petrov", emails=["  Ivan@Example.com "])

    # When the duplicates are looked for with exact, then with normalised comparison
    exact = pks(duplicates_of(first))
    Condition.objects.filter(rule__entity="customer").update(method=Condition.Method.NORMALIZED)
    normalised = pks(duplicates_of(first))

    # Then exact needs the same text (spaces aside), normalised ignores case
    assert exact == {same.pk}
    assert normalised == {same.pk, upper.pk}


def test_rules_fuzzy_threshold_and_reason():
    # Given a rule "name similar by 90%" and a typo in a surname
    only_rules("customer", ("Similar name", [("full_name", Condition.Method.FUZZY, 90)]))
    first = customer_with("Stanislav", "Kuznetsov")
    typo = customer_with("Stanislav", "Kuzentsov")
    customer_with("Maria", "Sidorova")

    # When the duplicates are looked for
    matches = duplicates_of(first)

    # Then the typo is found with its score in words
    assert pks(matches) == {typo.pk}
    assert matches[0].score >= 90
    assert matches[0].reasons == [f"full name {matches[0].score}% similar"]

    # And with a threshold above that score it is not
    Condition.objects.filter(rule__entity="customer").update(threshold=matches[0].score + 1)
    assert duplicates_of(first) == []


def test_rules_email_provider_folding_is_a_rule_option():
    # Given two spellings of one Gmail address
    first = customer_with("Ivan", "Petrov", emails=["ivan.petrov@gmail.com"])
    second = customer_with("Maria", "Sidorova", emails=["IvanPetrov+shop@googlemail.com"])

    # When the email rule does not fold, then does
    plain = pks(duplicates_of(first))
    only_rules("customer", ("Gmail-folded email", [("email", Condition.Method.NORMALIZED, {"fold_email": True})]))
    folded = pks(duplicates_of(first))

    # Then only the folding rule sees one address
    assert plain == set()
    assert folded == {second.pk}


def test_rules_stage_scope_leaves_won_and_lost_out_by_default(lead_pipeline):
    # Given three leads with one phone: in an open, a won and a lost stage
    stages = {stage.name: stage for stage in lead_pipeline.stages.all()}
    new = lead_with(stages["New"], phones=["+79123456789"])
    in_progress = lead_with(stages["In progress"], phones=["+79123456789"])
    won = lead_with(stages["Won"], phones=["+79123456789"])
    lead_with(stages["Lost"], phones=["+79123456789"])

    # When the duplicates of the new lead and of the won lead are looked for
    # Then only open leads take part
    assert pks(duplicates_of(new)) == {in_progress.pk}
    assert duplicates_of(won) == []


def test_rules_stage_scope_chosen_stages(lead_pipeline):
    # Given the phone rule of leads scoped to "New" and "Won" explicitly
    stages = {stage.name: stage for stage in lead_pipeline.stages.all()}
    Rule.objects.filter(entity="lead").exclude(name="Same phone").update(active=False)
    Rule.objects.filter(entity="lead", name="Same phone").update(stage_ids=[stages["New"].pk, stages["Won"].pk])
    new = lead_with(stages["New"], phones=["+79123456789"])
    lead_with(stages["In progress"], phones=["+79123456789"])
    won = lead_with(stages["Won"], phones=["+79123456789"])

    # When the new lead's duplicates are looked for
    # Then exactly the chosen stages take part
    assert pks(duplicates_of(new)) == {won.pk}


def test_rules_must_equal_field_keeps_different_services_apart():
    # Given one customer's three open deals: two for one service, one for another
    customer = customer_with("Ivan", "Petrov")
    stage = factories.StageFactory(name="Negotiation")
    consulting = factories.DealFactory(customer=customer, stage=stage, pipeline=stage.pipeline, service="Consulting")
    consulting_again = factories.DealFactory(
        customer=customer, stage=stage, pipeline=stage.pipeline, service=" consulting"
    )
    automation = factories.DealFactory(customer=customer, stage=stage, pipeline=stage.pipeline, service="Automation")

    # When the duplicates of the first deal are looked for
    matches = duplicates_of(consulting)

    # Then only the deal for the same service is one, and the reason says so
    assert pks(matches) == {consulting_again.pk}
    assert automation.pk not in pks(matches)
    assert "same service consulting" in matches[0].reasons[0]


def test_rules_must_equal_field_closed_deal_is_not_merged():
    # Given a won deal and two open deals of one customer, all for the same service
    customer = customer_with("Ivan", "Petrov")
    won = factories.StageFactory(name="Won", semantic=Stage.Semantic.WON)
    open_stage = factories.StageFactory(name="New")
    closed = factories.DealFactory(customer=customer, stage=won, pipeline=won.pipeline, service="Consulting")
    fresh = factories.DealFactory(customer=customer, stage=open_stage, pipeline=open_stage.pipeline, service="Consulting")
    open_again = factories.DealFactory(
        customer=customer, stage=open_stage, pipeline=open_stage.pipeline, service="Consulting"
    )

    # When the new deal's duplicates are looked for
    # Then the other open deal is one, the won deal is not (repeat sales are kept)
    assert pks(duplicates_of(fresh)) == {open_again.pk}
    assert closed.pk not in pks(duplicates_of(open_again))


def test_evaluate_pure_and_of_conditions():
    # Given a compiled rule "phone AND name" and records as index keys, without a database
    phone = MatchField("phone", "phone", "phone", lambda r: [])
    name = MatchField("full_name", "full name", "person_name", lambda r: [])
    spec = type("Spec", (), {"stage_field": None, "key": "x"})()
    rule = CompiledRule(
        Rule(pk=1, name="r"),
        spec,
        (CompiledCondition(phone, "normalized", 100), CompiledCondition(name, "normalized", 100)),
    )
    mine = RecordKeys({"phone": {"+79123456789": "+79123456789"}, "full_name": {"ivan petrov": "Ivan Petrov"}})
    same = RecordKeys({"phone": {"+79123456789": "8 912"}, "full_name": {"ivan petrov": "Petrov Ivan"}})
    other_name = RecordKeys({"phone": {"+79123456789": "8 912"}, "full_name": {"maria petrova": "Maria"}})

    # When each pair is evaluated
    # Then both conditions must hold, and the reason names both
    assert rules.evaluate(rule, mine, same).reason == "same phone +7 912 345-67-89 + same full name Petrov Ivan"
    assert rules.evaluate(rule, mine, other_name) is None
    assert rules.evaluate(rule, mine, same, {("phone", "+79123456789")}) is not None  # name backs a shared phone


def test_plan_kinds_follow_the_rules():
    # Given the default customer rules plus a fuzzy company rule
    from dedup import registry

    spec = registry.get("customer")
    before = rules.plan_kinds(spec)
    factories_rule = Rule.objects.create(entity="customer", name="Similar company")
    Condition.objects.create(rule=factories_rule, field="company_name", method="fuzzy", threshold=85)

    # When the index plan is computed
    after = rules.plan_kinds(spec)

    # Then it holds what the rules need, blocking keys for the fuzzy one, and the identity (full name)
    assert {"phone", "email", "messenger", "full_name", "company_name"} <= before
    assert after - before == {keys.block_kind("company_name")}
    assert Customer.objects.count() == 0
