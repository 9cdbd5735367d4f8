"""Which value of each field the survivor keeps: its own, the first non-empty one of the others, or the chosen."""
import datetime

import pytest

from crm.models import Customer, Order
from dedup.merge import MergeError, records_merge
from tests import factories

pytestmark = pytest.mark.django_db


def test_records_merge_keeps_the_survivors_values_and_fills_its_empty_fields_in_order(manager):
    # Given a priority customer without a position or birthday, and two others that have them
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="")
    first = factories.CustomerFactory(first_name="Vanya", last_name="Petrov", position="Buyer")
    second = factories.CustomerFactory(
        first_name="I.", last_name="Petrov", position="Director", birthday=datetime.date(1990, 5, 17)
    )

    # When they are merged into the priority customer
    result = records_merge(survivor=survivor, absorbed=[first, second], user=manager)

    # Then the survivor keeps its own name, takes the first position found and the only birthday there is
    survivor.refresh_from_db()
    assert (survivor.first_name, survivor.position, survivor.birthday) == ("Ivan", "Buyer", datetime.date(1990, 5, 17))
    assert result.filled == {"position": first.pk, "birthday": second.pk}


def test_records_merge_takes_a_value_the_user_chose_from_another_record(manager):
    # Given two customers with different first names and companies
    company = factories.CompanyFactory(name="Acme LLC")
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    other = factories.CustomerFactory(first_name="Ivan Ivanovich", last_name="Petrov", company=company)

    # When the user picks the other record's first name on the compare screen
    records_merge(survivor=survivor, absorbed=[other], choices={"first_name": other.pk}, user=manager)

    # Then the survivor has that first name, and the company it had none of
    survivor.refresh_from_db()
    assert survivor.first_name == "Ivan Ivanovich"
    assert survivor.company == company


def test_records_merge_keeps_an_empty_value_when_the_user_chose_it(manager):
    # Given a survivor without a position; the other record has one
    survivor = factories.CustomerFactory(position="")
    other = factories.CustomerFactory(position="Buyer")

    # When the user explicitly keeps the survivor's (empty) position
    records_merge(survivor=survivor, absorbed=[other], choices={"position": survivor.pk}, user=manager)

    # Then it stays empty
    survivor.refresh_from_db()
    assert survivor.position == ""


def test_records_merge_moves_an_email_to_a_priority_customer_that_had_none(manager):
    # Given (seed 004) a priority customer with no email and a duplicate that has one
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.PhoneFactory(content_object=survivor, number="+7 912 345-67-89")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.EmailFactory(content_object=duplicate, address="ivan@example.com")

    # When the duplicate is merged into the priority customer
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the priority customer's card shows the email
    assert list(survivor.emails.values_list("address", flat=True)) == ["ivan@example.com"]
    assert list(survivor.phones.values_list("number", flat=True)) == ["+7 912 345-67-89"]


def test_records_merge_fills_a_plain_email_field_of_an_order(manager):
    # Given a priority order without an email and another order of the same customer with one
    survivor = factories.OrderFactory(email="", phone="+79123456789")
    other = factories.OrderFactory(customer=survivor.customer, email="buyer@example.com", phone="")

    # When they are merged
    records_merge(survivor=survivor, absorbed=[other], user=manager)

    # Then the priority order carries the email and keeps its own number
    survivor.refresh_from_db()
    assert (survivor.email, survivor.phone, survivor.number) == ("buyer@example.com", "+79123456789", survivor.number)


def test_records_merge_merges_custom_fields_key_by_key(manager):
    # Given custom fields on both records, some keys only on one, one key empty on the survivor
    survivor = factories.CustomerFactory(custom_fields={"size": "M", "colour": "", "vip": False})
    other = factories.CustomerFactory(custom_fields={"size": "L", "colour": "red", "city": "Kazan"})

    # When they are merged, the user choosing the other record's size
    records_merge(survivor=survivor, absorbed=[other], choices={"custom_fields.size": other.pk}, user=manager)

    # Then each key follows the rule on its own: chosen, filled where empty, kept, added
    survivor.refresh_from_db()
    assert survivor.custom_fields == {"size": "L", "colour": "red", "vip": False, "city": "Kazan"}


def test_records_merge_moves_a_unique_external_id_instead_of_copying_it(manager):
    # Given a survivor without an external ID and a duplicate imported with one (unique among customers)
    survivor = factories.CustomerFactory(external_id="")
    duplicate = factories.CustomerFactory(external_id="1C-0042")

    # When they are merged
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the survivor has the external ID and the archived duplicate no longer claims it
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert survivor.external_id == "1C-0042"
    assert duplicate.external_id == ""


def test_records_merge_refuses_to_copy_a_value_that_must_stay_unique(manager):
    # Given two orders: an order number is unique and never empty
    survivor = factories.OrderFactory(number="A-1")
    other = factories.OrderFactory(number="A-2")

    # When the user asks for the other order's number
    with pytest.raises(MergeError, match="must be unique"):
        records_merge(survivor=survivor, absorbed=[other], choices={"number": other.pk}, user=manager)

    # Then nothing changed
    assert set(Order.objects.values_list("number", "is_archived")) == {("A-1", False), ("A-2", False)}


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ({"no_such_field": 1}, "not a field that can be chosen"),
        ({"is_archived": 1}, "not a field that can be chosen"),
        ({"first_name": 999999}, "not one of the merged records"),
        ({"first_name": "abc"}, "not one of the merged records"),
    ],
)
def test_records_merge_refuses_choices_it_cannot_apply(manager, choices, message):
    # Given two customers
    survivor = factories.CustomerFactory(first_name="Ivan")
    other = factories.CustomerFactory(first_name="Petr")

    # When the choices name an unknown field or a record outside the merge
    with pytest.raises(MergeError, match=message):
        records_merge(survivor=survivor, absorbed=[other], choices=choices, user=manager)

    # Then nothing was merged
    assert Customer.objects.filter(is_archived=True).count() == 0


def test_records_merge_refuses_a_stage_of_another_pipeline(manager):
    # Given two deals in different pipelines
    survivor = factories.DealFactory(stage__pipeline__name="Sales")
    other = factories.DealFactory(stage__pipeline__name="Service", stage__name="Booked")

    # When the user takes the other deal's stage but keeps the survivor's pipeline
    with pytest.raises(MergeError, match="another pipeline"):
        records_merge(survivor=survivor, absorbed=[other], choices={"stage": other.pk}, user=manager)

    # Then the deals are untouched
    survivor.refresh_from_db()
    assert survivor.stage.pipeline.name == "Sales" and not survivor.is_archived


@pytest.mark.parametrize("absorbed", [[], "self"])
def test_records_merge_refuses_nothing_to_merge_or_merging_into_itself(manager, absorbed):
    # Given one customer
    survivor = factories.CustomerFactory()

    # When it is merged with nothing, or with itself
    with pytest.raises(MergeError):
        records_merge(survivor=survivor, absorbed=[survivor] if absorbed == "self" else absorbed, user=manager)

    # Then it is still there and live
    survivor.refresh_from_db()
    assert not survivor.is_archived


def test_records_merge_refuses_records_of_different_kinds(manager):
    # Given a customer and a company
    customer = factories.CustomerFactory()
    company = factories.CompanyFactory()

    # When they are merged
    with pytest.raises(MergeError, match="one kind"):
        records_merge(survivor=customer, absorbed=[company], user=manager)

    # Then neither was archived
    company.refresh_from_db()
    assert not company.is_archived
