"""Repeat sales (seed 001): returning customers get repeat leads and deals, with exceptions and an off switch."""
import pytest

from crm.models import ChatMessage, Customer, Deal, Lead, Note, RepeatSalesSettings, Stage
from crm.services import repeat_sales
from tests import factories

LEADS = "/api/leads/"
PHONE = "+79123456789"


def _stage(pipeline, name):
    return Stage.objects.get(pipeline=pipeline, name=name)


def _known_customer(**fields):
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", **fields)
    factories.PhoneFactory(content_object=customer, number=PHONE)
    return customer


def _lead_of(customer, pipeline, stage, **fields):
    return factories.LeadFactory(customer=customer, pipeline=pipeline, stage=_stage(pipeline, stage), **fields)


def _deal_of(customer, pipeline, stage, **fields):
    return factories.DealFactory(customer=customer, pipeline=pipeline, stage=_stage(pipeline, stage), **fields)


def _post(client, **payload):
    response = client.post(LEADS, {"phones": [PHONE], **payload}, format="json")
    assert response.status_code in (200, 201), response.content
    return response


@pytest.mark.parametrize("completed_stage", ["Won", "Lost"])
def test_repeat_lead_after_a_completed_lead_won_or_lost(intake_client, lead_pipeline, completed_stage):
    # given a customer whose earlier lead was completed (successful or not)
    customer = _known_customer()
    _lead_of(customer, lead_pipeline, completed_stage)
    # when they send a form again
    response = _post(intake_client, name="Ivan Petrov")
    # then the new lead is a repeat lead linked to the customer
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert response.json()["is_repeat"] is True
    assert lead.is_repeat and lead.customer == customer and not lead.is_repeat_inquiry


def test_repeat_lead_from_a_completed_lead_without_a_customer(intake_client, lead_pipeline):
    # given a lost lead that was never linked to a customer, holding the phone itself
    old = factories.LeadFactory(pipeline=lead_pipeline, stage=_stage(lead_pipeline, "Lost"))
    factories.PhoneFactory(content_object=old, number=PHONE)
    # when the same phone comes in
    response = _post(intake_client)
    # then the new lead is a repeat, and its note names the completed lead
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.is_repeat
    assert f"#{old.pk}" in Note.objects.get(object_id=lead.pk).text


def test_lead_linked_to_an_existing_customer_is_always_repeat(intake_client, lead_pipeline):
    # given a customer with no leads at all
    customer = _known_customer()
    # when their phone comes in
    response = _post(intake_client)
    # then the lead is linked to them and marked repeat
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.customer == customer and lead.is_repeat


def test_lead_from_an_existing_company_is_repeat(intake_client, lead_pipeline, duplicate_rules):
    # given a company already in the base
    company = factories.CompanyFactory(name="Acme LLC")
    # when a form names it in another case and without the legal form (no contact in common)
    response = intake_client.post(LEADS, {"name": "Olga", "company": "ACME"}, format="json")
    # then the lead is linked to the company and is a repeat
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.company == company and lead.is_repeat


def test_new_person_gets_a_plain_new_lead(intake_client, lead_pipeline):
    response = _post(intake_client, name="Somebody New")
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert not lead.is_repeat and lead.customer is None


def test_excluded_customer_never_gets_a_repeat_lead(intake_client, lead_pipeline):
    # given a customer on the exceptions list, with a won lead
    customer = _known_customer(exclude_from_repeat_sales=True)
    _lead_of(customer, lead_pipeline, "Won")
    # when they come back
    response = _post(intake_client)
    # then the new lead is not a repeat (it still belongs to them)
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert not lead.is_repeat and not lead.is_repeat_inquiry
    assert response.json()["is_repeat"] is False


def test_repeat_sales_off_keeps_the_request_in_the_customer_history(intake_client, lead_pipeline):
    # given repeat sales mode switched off and a known customer
    RepeatSalesSettings.objects.create(enabled=False)
    customer = _known_customer()
    _lead_of(customer, lead_pipeline, "Won")
    # when they send a form
    response = _post(intake_client, comment="I want another one")
    # then no lead is created; the request is in the customer's history
    assert response.status_code == 200
    assert response.json()["decision"] == "added_to_customer"
    assert Lead.objects.count() == 1
    note = Note.objects.get(object_id=customer.pk, content_type__model="customer")
    assert "I want another one" in note.text


def test_repeat_sales_off_new_people_still_get_leads(intake_client, lead_pipeline):
    RepeatSalesSettings.objects.create(enabled=False)
    response = _post(intake_client)
    assert response.status_code == 201
    assert not Lead.objects.get().is_repeat


def test_repeat_sales_off_messages_go_to_the_customer_history(intake_client, lead_pipeline):
    # given repeat sales off and a customer known by their Telegram chat
    RepeatSalesSettings.objects.create(enabled=False)
    customer = factories.CustomerFactory()
    factories.MessengerFactory(content_object=customer, username="", chat_id="777")
    # when they write from that chat
    response = intake_client.post(
        "/api/messages/", {"channel": "telegram", "chat_id": "777", "text": "Hello again"}, format="json"
    )
    # then the message is in the customer's timeline and no lead is made
    assert response.json()["decision"] == "added_to_customer"
    assert not Lead.objects.exists()
    assert ChatMessage.objects.get().object_id == customer.pk


def test_repeat_inquiry_when_the_repeat_leads_deals_were_all_lost(
    intake_client, lead_pipeline, deal_pipeline, django_capture_on_commit_callbacks
):
    # given a customer whose repeat lead became two deals
    customer = _known_customer()
    repeat_lead = _lead_of(customer, lead_pipeline, "Won", is_repeat=True)
    first = _deal_of(customer, deal_pipeline, "Lost", source_lead=repeat_lead)
    second = _deal_of(customer, deal_pipeline, "Open", source_lead=repeat_lead)
    # when the second deal is lost too
    with django_capture_on_commit_callbacks(execute=True):
        second.stage = _stage(deal_pipeline, "Lost")
        second.save()
    # then the repeat lead and its deals are repeat inquiries
    repeat_lead.refresh_from_db()
    assert repeat_lead.is_repeat_inquiry
    assert set(Deal.objects.values_list("is_repeat_inquiry", flat=True)) == {True}
    assert first.pk != second.pk
    # and the customer's next request is a repeat inquiry too
    response = _post(intake_client)
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.is_repeat and lead.is_repeat_inquiry
    assert response.json()["is_repeat_inquiry"] is True


def test_repeat_inquiry_counts_the_deals_of_the_customers_company(intake_client, lead_pipeline, deal_pipeline):
    # given a colleague's repeat lead that became a lost deal of their company
    company = factories.CompanyFactory(name="Acme LLC")
    colleague = factories.CustomerFactory(first_name="Olga", last_name="Sidorova", company=company)
    repeat_lead = _lead_of(colleague, lead_pipeline, "Won", is_repeat=True)
    _deal_of(colleague, deal_pipeline, "Lost", source_lead=repeat_lead, company=company)
    # when another customer of that company asks again
    _known_customer(company=company)
    response = _post(intake_client)
    # then the new lead is the company's repeat inquiry
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.is_repeat and lead.is_repeat_inquiry and lead.company == company


def test_repeat_inquiry_is_not_made_while_a_repeat_deal_is_open(intake_client, lead_pipeline, deal_pipeline):
    # given a customer whose repeat lead became one lost and one open deal
    customer = _known_customer()
    repeat_lead = _lead_of(customer, lead_pipeline, "Won", is_repeat=True)
    _deal_of(customer, deal_pipeline, "Lost", source_lead=repeat_lead)
    _deal_of(customer, deal_pipeline, "Open", source_lead=repeat_lead)
    # when they ask again
    response = _post(intake_client)
    # then the new lead is a repeat, not a repeat inquiry
    lead = Lead.objects.get(pk=response.json()["lead"])
    assert lead.is_repeat and not lead.is_repeat_inquiry


def test_repeat_inquiry_is_lifted_when_a_deal_is_won(lead_pipeline, deal_pipeline, django_capture_on_commit_callbacks):
    # given a repeat inquiry (its only deal lost)
    customer = _known_customer()
    repeat_lead = _lead_of(customer, lead_pipeline, "Won", is_repeat=True)
    deal = _deal_of(customer, deal_pipeline, "Lost", source_lead=repeat_lead)
    repeat_sales.repeat_inquiries_refresh(customer_ids=[customer.pk])
    repeat_lead.refresh_from_db()
    assert repeat_lead.is_repeat_inquiry
    # when the deal is reopened and won
    with django_capture_on_commit_callbacks(execute=True):
        deal.stage = _stage(deal_pipeline, "Won")
        deal.save()
    # then it is a plain repeat again
    repeat_lead.refresh_from_db()
    deal.refresh_from_db()
    assert repeat_lead.is_repeat and not repeat_lead.is_repeat_inquiry
    assert not deal.is_repeat_inquiry


def test_repeat_leads_with_an_open_deal_are_not_inquiries(lead_pipeline, deal_pipeline):
    customer = _known_customer()
    repeat_lead = _lead_of(customer, lead_pipeline, "Won", is_repeat=True)
    _deal_of(customer, deal_pipeline, "Lost", source_lead=repeat_lead)
    _deal_of(customer, deal_pipeline, "Open", source_lead=repeat_lead)
    repeat_sales.repeat_inquiries_refresh(customer_ids=[customer.pk])
    repeat_lead.refresh_from_db()
    assert not repeat_lead.is_repeat_inquiry


def test_every_deal_after_a_won_deal_is_a_repeat_deal(deal_pipeline):
    # given a customer with a won deal
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Won")
    # when managers create new deals for them (any way: admin, import)
    later = [_deal_of(customer, deal_pipeline, "Open") for _ in range(2)]
    # then each one is a repeat deal
    assert all(deal.is_repeat for deal in later)
    assert all(Deal.objects.get(pk=deal.pk).is_repeat for deal in later)


def test_record_save_with_flags_keeps_the_flags_its_caller_decided(deal_pipeline):
    # given a customer with a won deal, whose next deal the receivers would mark repeat
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Won")
    decided = repeat_sales.RepeatFlags(is_repeat=False, is_repeat_inquiry=True)
    deal = Deal(title="Chat", customer=customer, pipeline=deal_pipeline, stage=_stage(deal_pipeline, "Open"))
    # when it is saved with the flags its caller decided
    repeat_sales.record_save_with_flags(deal, flags=decided)
    # then those flags are stored, and the next deal saved plainly is decided by the receivers again
    assert Deal.objects.values_list("is_repeat", "is_repeat_inquiry").get(pk=deal.pk) == (False, True)
    assert _deal_of(customer, deal_pipeline, "Open").is_repeat


def test_deal_of_a_customer_with_only_lost_deals_is_not_repeat(deal_pipeline):
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Lost")
    assert not _deal_of(customer, deal_pipeline, "Open").is_repeat


def test_deal_converted_from_a_repeat_lead_is_a_repeat_deal(lead_pipeline, deal_pipeline):
    customer = _known_customer()
    repeat_lead = _lead_of(customer, lead_pipeline, "Won", is_repeat=True)
    deal = _deal_of(customer, deal_pipeline, "Open", source_lead=repeat_lead)
    assert deal.is_repeat


def test_excluded_customer_never_gets_a_repeat_deal(deal_pipeline):
    customer = _known_customer(exclude_from_repeat_sales=True)
    _deal_of(customer, deal_pipeline, "Won")
    assert not _deal_of(customer, deal_pipeline, "Open").is_repeat


def test_repeat_sales_off_marks_nothing(deal_pipeline, lead_pipeline):
    RepeatSalesSettings.objects.create(enabled=False)
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Won")
    assert not _deal_of(customer, deal_pipeline, "Open").is_repeat
    assert not _lead_of(customer, lead_pipeline, "New").is_repeat


def test_lead_made_by_hand_for_a_known_customer_is_repeat(lead_pipeline):
    # given a customer, when a manager creates a lead for them in the admin, it is a repeat lead
    customer = _known_customer()
    assert _lead_of(customer, lead_pipeline, "New").is_repeat


def test_simple_crm_mode_repeat_deal_after_a_lost_deal(intake_client, deal_pipeline):
    # given Simple CRM mode and a customer whose only deal was lost
    RepeatSalesSettings.objects.create(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Lost")
    # when they come back
    response = _post(intake_client)
    # then a repeat deal is created instead of a repeat lead
    deal = Deal.objects.get(pk=response.json()["deal"])
    assert deal.is_repeat and deal.customer == customer
    assert not Lead.objects.exists()


def test_simple_crm_mode_repeat_inquiry_after_lost_repeat_deals(intake_client, deal_pipeline):
    # given Simple CRM mode and a customer whose repeat deals were all lost
    RepeatSalesSettings.objects.create(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)
    customer = _known_customer()
    _deal_of(customer, deal_pipeline, "Lost", is_repeat=True)
    _deal_of(customer, deal_pipeline, "Lost", is_repeat=True)
    # when they come back
    response = _post(intake_client)
    # then the new deal is a repeat inquiry
    deal = Deal.objects.get(pk=response.json()["deal"])
    assert deal.is_repeat and deal.is_repeat_inquiry


def test_simple_crm_mode_new_customer_gets_a_new_deal(intake_client, deal_pipeline):
    RepeatSalesSettings.objects.create(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)
    response = _post(intake_client, name="Brand New")
    deal = Deal.objects.get(pk=response.json()["deal"])
    assert not deal.is_repeat
    assert Customer.objects.get().pk == deal.customer_id
