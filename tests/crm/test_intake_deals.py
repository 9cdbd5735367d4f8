"""Incoming requests against deals (seed 003): one person's deals stay apart unless the service is the same and
both are in stages the rules merge in; Simple CRM mode makes deals instead of leads."""
import pytest

from crm.models import Customer, Deal, IntakeSettings, Lead, Note, Pipeline, RepeatSalesSettings, Stage
from tests import factories

LEADS = "/api/leads/"


@pytest.fixture
def deal_pipeline(db):
    pipeline = factories.PipelineFactory(name="Sales", kind=Pipeline.Kind.DEAL)
    for order, (name, semantic) in enumerate(
        [("First contact", "open"), ("Deciding", "open"), ("Won", "won"), ("Lost", "lost")]
    ):
        factories.StageFactory(pipeline=pipeline, name=name, semantic=semantic, sort_order=order)
    return pipeline


def _stage(pipeline, name):
    return Stage.objects.get(pipeline=pipeline, name=name)


def _customer_with_deal(deal_pipeline, *, stage="Deciding", service="Consulting", phone="+79123456789"):
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.PhoneFactory(content_object=customer, number=phone)
    deal = factories.DealFactory(
        customer=customer, stage=_stage(deal_pipeline, stage), pipeline=deal_pipeline, service=service
    )
    return customer, deal


@pytest.fixture
def simple_mode(deal_pipeline):
    return RepeatSalesSettings.objects.create(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)


def _search_deal_stages(lead_pipeline, deal_pipeline, *names):
    settings, _created = IntakeSettings.objects.get_or_create(pipeline=lead_pipeline)
    settings.search_stages.set(
        [*Stage.objects.filter(pipeline=lead_pipeline, semantic="open"), *(_stage(deal_pipeline, n) for n in names)]
    )
    return settings


def test_intake_lead_matches_an_open_deal_of_the_same_service(intake_client, lead_pipeline, deal_pipeline, duplicate_rules):
    # given a customer whose open deal is about consulting, and deal stages searched for incoming leads
    customer, deal = _customer_with_deal(deal_pipeline, service="Consulting")
    _search_deal_stages(lead_pipeline, deal_pipeline, "First contact", "Deciding")
    # when the customer asks about consulting again
    response = intake_client.post(
        LEADS, {"phones": ["8 912 345-67-89"], "emails": ["ivan@example.com"], "service": "consulting"}, format="json"
    )
    # then the deal gets the request (a note) and the customer the new email; no lead is created
    assert response.status_code == 200, response.content
    assert response.json()["deal"] == deal.pk
    assert not Lead.objects.exists()
    assert Note.objects.filter(object_id=deal.pk, content_type__model="deal").count() == 1
    assert list(customer.emails.values_list("address", flat=True)) == ["ivan@example.com"]


def test_intake_lead_for_another_service_does_not_touch_the_deal(intake_client, lead_pipeline, deal_pipeline, duplicate_rules):
    # given the same customer's consulting deal
    customer, deal = _customer_with_deal(deal_pipeline, service="Consulting")
    _search_deal_stages(lead_pipeline, deal_pipeline, "First contact", "Deciding")
    # when they ask about automation
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "service": "Automation"}, format="json")
    # then a new lead is created for that interest (a repeat lead of the known customer); the deal is left alone
    assert response.status_code == 201
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.customer == customer and lead.is_repeat
    assert not Note.objects.filter(object_id=deal.pk, content_type__model="deal").exists()


def test_intake_won_deal_is_not_merged_even_when_its_stage_is_searched(intake_client, lead_pipeline, deal_pipeline, duplicate_rules):
    # given a won consulting deal, and an admin who added the Won stage to the intake search
    customer, deal = _customer_with_deal(deal_pipeline, stage="Won", service="Consulting")
    _search_deal_stages(lead_pipeline, deal_pipeline, "Deciding", "Won")
    # when the customer asks about consulting again
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "service": "Consulting"}, format="json")
    # then the deal rule (open stages only, unless an admin adds won and lost to it) keeps them apart:
    # a new repeat lead is created and the won deal is untouched
    assert response.status_code == 201
    assert Lead.objects.get().is_repeat
    assert not Note.objects.filter(object_id=deal.pk, content_type__model="deal").exists()


def test_intake_won_deal_is_merged_when_the_rule_includes_won(intake_client, lead_pipeline, deal_pipeline, duplicate_rules):
    # given the deal rule extended by an admin to the Won stage, and the intake searching it too
    customer, deal = _customer_with_deal(deal_pipeline, stage="Won", service="Consulting")
    rule = next(rule for rule in duplicate_rules if rule.entity == "deal")
    rule.stage_ids = [_stage(deal_pipeline, "Won").pk, _stage(deal_pipeline, "Deciding").pk]
    rule.save()
    _search_deal_stages(lead_pipeline, deal_pipeline, "Won")
    # when the customer asks about the same service
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "service": "Consulting"}, format="json")
    # then the request goes to the won deal, as configured
    assert response.status_code == 200
    assert response.json()["deal"] == deal.pk


def test_simple_crm_mode_creates_a_deal_and_customer_instead_of_a_lead(intake_client, deal_pipeline, simple_mode):
    # given Simple CRM mode (no leads) and an empty base
    # when a form comes in without naming a pipeline
    response = intake_client.post(
        LEADS, {"name": "Ivan Petrov", "phones": ["+79123456789"], "service": "Consulting", "amount": "1500"},
        format="json",
    )
    # then a deal is created in the default deal pipeline, for a new customer holding the contacts
    assert response.status_code == 201, response.content
    assert not Lead.objects.exists()
    deal = Deal.objects.get(pk=response.json()["deal"])
    assert deal.pipeline == deal_pipeline and deal.stage.name == "First contact"
    assert (deal.service, str(deal.amount), deal.is_repeat) == ("Consulting", "1500.00", False)
    assert list(deal.customer.phones.values_list("e164", flat=True)) == ["+79123456789"]


def test_simple_crm_mode_same_service_updates_the_open_deal(intake_client, deal_pipeline, simple_mode, duplicate_rules):
    # given a customer with an open consulting deal
    customer, deal = _customer_with_deal(deal_pipeline, stage="First contact", service="Consulting")
    # when they send the form again for the same service
    response = intake_client.post(
        LEADS, {"phones": ["+79123456789"], "service": "Consulting", "amount": "900"}, format="json"
    )
    # then the open deal is updated instead of a second deal being made
    assert response.status_code == 200, response.content
    assert response.json()["deal"] == deal.pk
    assert Deal.objects.count() == 1
    deal.refresh_from_db()
    assert str(deal.amount) == "900.00"


def test_simple_crm_mode_other_service_makes_a_repeat_deal(intake_client, deal_pipeline, simple_mode, duplicate_rules):
    # given a customer with an open consulting deal
    customer, deal = _customer_with_deal(deal_pipeline, stage="First contact", service="Consulting")
    # when they ask for automation
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "service": "Automation"}, format="json")
    # then a separate repeat deal of the same customer is created
    assert response.status_code == 201
    new = Deal.objects.get(pk=response.json()["deal"])
    assert new.customer == customer and new.is_repeat and new.service == "Automation"
    assert Customer.objects.count() == 1


def test_simple_crm_mode_refuses_a_lead_pipeline(intake_client, lead_pipeline, deal_pipeline, simple_mode):
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "pipeline": "Incoming"}, format="json")
    assert response.status_code == 400
    assert "Simple CRM" in response.json()["pipeline"][0]
