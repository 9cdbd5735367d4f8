"""The CRM models' constraints and derived fields."""
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm import models
from tests import factories

pytestmark = pytest.mark.django_db


def test_phone_save_stores_e164_beside_raw_text(customer):
    # Given a phone typed in the Russian national form
    phone = factories.PhoneFactory(content_object=customer, number="8 (912) 345-67-89")

    # Then the text is kept as typed and the international form is stored beside it
    phone.refresh_from_db()
    assert phone.number == "8 (912) 345-67-89"
    assert phone.e164 == "+79123456789"


def test_phone_save_keeps_garbage_unmatched(customer):
    # Given a value that is not a phone number
    phone = factories.PhoneFactory(content_object=customer, number="call me maybe")

    # Then it is kept as typed with no international form
    phone.refresh_from_db()
    assert (phone.number, phone.e164) == ("call me maybe", "")


def test_customer_external_id_unique_when_set():
    # Given a customer with an external id, and two without one
    factories.CustomerFactory(external_id="X-1")
    factories.CustomerFactory(external_id="")
    factories.CustomerFactory(external_id="")

    # When another customer claims the same external id, the database refuses
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.CustomerFactory(external_id="X-1")


def test_note_only_one_pinned_per_record(customer):
    # Given a pinned note on a customer
    factories.NoteFactory(content_object=customer, pinned=True)
    other = factories.CustomerFactory()
    factories.NoteFactory(content_object=other, pinned=True)  # another record may have its own

    # When a second note of the same customer is pinned, the database refuses
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.NoteFactory(content_object=customer, pinned=True)
    assert factories.NoteFactory(content_object=customer, pinned=False).pk


def test_lead_stage_must_belong_to_pipeline():
    # Given a lead whose stage is in another pipeline
    lead = factories.LeadFactory()
    other_stage = factories.StageFactory(pipeline=factories.PipelineFactory(name="Other"), name="Elsewhere")
    lead.stage = other_stage

    # Then validation names the stage field
    with pytest.raises(ValidationError) as error:
        lead.full_clean()
    assert "stage" in error.value.message_dict


def test_stage_is_closed_for_won_and_lost():
    pipeline = factories.PipelineFactory()
    open_stage = factories.StageFactory(pipeline=pipeline, name="New")
    won = factories.StageFactory(pipeline=pipeline, name="Won", semantic=models.Stage.Semantic.WON)
    lost = factories.StageFactory(pipeline=pipeline, name="Lost", semantic=models.Stage.Semantic.LOST)

    assert [open_stage.is_closed, won.is_closed, lost.is_closed] == [False, True, True]


def test_messenger_needs_username_or_chat_id(customer):
    # A handle with a chat id only (a Telegram client with a hidden number) is fine
    factories.MessengerFactory(content_object=customer, username="", chat_id="123456")

    # One with neither is refused
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.MessengerFactory(content_object=customer, username="", chat_id="")


def test_order_total_and_item_quantity_constraints():
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.OrderFactory(total=Decimal("-1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.OrderItemFactory(quantity=0)


def test_order_save_normalises_its_phone():
    order = factories.OrderFactory(phone="+7 912 345 67 89")
    order.refresh_from_db()
    assert order.phone_e164 == "+79123456789"


def test_entity_str_is_readable():
    company = factories.CompanyFactory(name="Romashka LLC")
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", middle_name="", company=company)
    order = factories.OrderFactory(number="A-1", customer=customer)

    assert str(customer) == "Petrov Ivan"
    assert str(company) == "Romashka LLC"
    assert str(order) == "Order A-1"
    assert str(factories.CustomerFactory(first_name="", last_name="")).startswith("Customer #")
