"""The warning while typing (dedup/admin/card.py duplicates_check_view, dedup.engine.selectors.typed_duplicates)."""
import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from dedup import registry
from dedup.engine.selectors import typed_duplicates, typed_values
from tests import factories

CHECK_URL = "admin:crm_customer_duplicates_check"


def _customer(first="Ivan", last="Petrov", phone="+7 912 345-67-89", email=None, company=None):
    customer = factories.CustomerFactory(first_name=first, last_name=last, company=company)
    if phone:
        factories.PhoneFactory(content_object=customer, number=phone)
    if email:
        factories.EmailFactory(content_object=customer, address=email)
    return customer


def _manager(*codenames, username="manager"):
    user = factories.UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))
    if "merge_records" in codenames:
        user.user_permissions.add(Permission.objects.get(codename="merge_records"))
    return user


PHONES = "phones__number"


def test_typed_values_reads_a_full_name_from_its_parts_and_relations_as_typed(db):
    # Given what a manager typed into a new customer's form
    inputs = {"last_name": ["Petrov"], "first_name": [" Ivan "], PHONES: ["8 912 345-67-89", ""],
              "company__name": ["Acme LLC"]}

    # When the form's inputs become the finder's values
    values = typed_values(registry.get("customer"), inputs)

    # Then the full name is read as the saved record would be, and phones and the company as typed
    assert values["full_name"] == ["Petrov Ivan"]
    assert values["phone"] == ["8 912 345-67-89"]
    assert values["company_name"] == ["Acme LLC"]


def test_typed_duplicates_finds_a_saved_customer_by_a_phone_in_another_form(db):
    # Given a saved customer with a phone
    saved = _customer()

    # When a manager types the same phone in its national form
    found = typed_duplicates(registry.get("customer"), inputs={PHONES: ["8 (912) 345-67-89"]})

    # Then the saved customer is a possible duplicate, matched on the phone
    assert [item.pk for item in found] == [saved.pk]
    assert found[0].fields == ["phone"]
    assert "+7 912 345-67-89" in found[0].reasons[0]


def test_typed_duplicates_leaves_out_the_record_being_changed(db):
    # Given a customer whose own form is open
    saved = _customer()

    # When its own phone is checked from its change form
    found = typed_duplicates(registry.get("customer"), inputs={PHONES: ["+79123456789"]}, exclude_pk=saved.pk)

    # Then it is no duplicate of itself
    assert found == []


def test_duplicates_check_answers_with_the_duplicate_its_reason_and_links(client, db):
    # Given a saved customer and a manager who may add and change customers and merge
    saved = _customer(email="ivan@example.com")
    other = _customer(first="Olga", last="Smirnova", phone="+7 900 000-00-01")
    client.force_login(_manager("add_customer", "change_customer", "view_customer", "merge_records"))

    # When the change form of another customer asks about the phone and email being typed
    response = client.get(
        reverse(CHECK_URL), {PHONES: "8 912 345 67 89", "emails__address": "IVAN@example.com", "exclude": other.pk}
    )

    # Then the answer names the saved customer, says why, and links its card and the compare screen
    assert response.status_code == 200
    [item] = response.json()["duplicates"]
    assert item["pk"] == saved.pk
    assert item["label"] == "Petrov Ivan"
    assert set(item["fields"]) == {"phone", "email"}
    assert item["url"] == reverse("admin:crm_customer_change", args=[saved.pk])
    assert item["merge_url"].startswith(reverse("admin:crm_customer_compare", args=[other.pk]))
    assert f"records={saved.pk}" in item["merge_url"]


def test_duplicates_check_on_an_add_form_offers_no_merge(client, db):
    # Given a saved customer and a manager on the add form (nothing saved to merge into yet)
    _customer()
    client.force_login(_manager("add_customer", "change_customer", "view_customer", "merge_records"))

    # When the phone is typed
    [item] = client.get(reverse(CHECK_URL), {PHONES: "+7 912 345-67-89"}).json()["duplicates"]

    # Then the duplicate can be opened but not merged
    assert item["url"] and item["merge_url"] == ""


def test_duplicates_check_refuses_a_user_who_may_not_add_or_change(client, db):
    # Given a saved customer and a staff user who may only view customers
    _customer()
    client.force_login(_manager("view_customer"))

    # When the user asks about a phone
    response = client.get(reverse(CHECK_URL), {PHONES: "+7 912 345-67-89"})

    # Then the admin refuses: the check is no way around the permissions
    assert response.status_code == 403


def test_duplicates_check_costs_the_same_queries_on_a_bigger_base(client, db, django_assert_max_num_queries):
    # Given a manager and one saved duplicate among a few customers
    client.force_login(_manager("add_customer", "change_customer", "view_customer"))
    _customer()
    params = {PHONES: "+7 912 345-67-89", "last_name": "Petrov", "first_name": "Ivan", "emails__address": "x@y.z"}
    client.get(reverse(CHECK_URL), params)  # warm the session and content types

    # When it is asked on a small base, then on one with forty more customers sharing the name and the phone
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        client.get(reverse(CHECK_URL), params)
    for index in range(40):
        _customer(phone="+7 912 345-67-89" if index % 2 else f"+7 900 000-00-{index:02d}")
    with CaptureQueriesContext(connection) as big:
        response = client.get(reverse(CHECK_URL), params)

    # Then the number of queries does not grow with the base
    assert len(response.json()["duplicates"]) == 5
    assert len(big.captured_queries) == len(small.captured_queries)
    assert len(big.captured_queries) <= 12


def test_customer_add_form_carries_the_typing_config(admin_client):
    # When the add form of a customer opens
    response = admin_client.get(reverse("admin:crm_customer_add"))

    # Then it loads the script and tells it which inputs to watch and where to ask
    content = response.content.decode()
    assert "dedup/typing.js" in content
    config = response.context["dedup_typing"]
    assert config["url"] == reverse(CHECK_URL)
    assert set(config["inputs"]) >= {PHONES, "emails__address", "last_name", "first_name", "company__name"}


@pytest.mark.parametrize("model", ["company", "lead"])
def test_company_and_lead_forms_are_checked_while_typing(admin_client, model):
    # When the add form of a company or a lead opens
    response = admin_client.get(reverse(f"admin:crm_{model}_add"))

    # Then their phone, email and name inputs are watched too
    inputs = response.context["dedup_typing"]["inputs"]
    assert PHONES in inputs and "emails__address" in inputs
    assert ("name" if model == "company" else "last_name") in inputs
