"""The admin's import with a duplicate policy: the preview and the result page say per row what and why; undo."""
import html

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import Customer, Email, ImportBatch, Phone, Tag
from tests import factories

FILE = (
    "first_name,last_name,phone,email,position,tags\n"
    "Ivan,Petrov,8 (912) 345-67-89,ivan@example.com,Director,vip\n"
    "Anna,Lee,+1 415 555 0100,anna@example.com,,\n"
    "Anna,Lee,,ANNA@example.com,Buyer,\n"
).encode()


@pytest.fixture
def ivan(db):
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="", source="")
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89", is_primary=True)
    customer.tags.add(Tag.objects.create(name="old"))
    return Customer.objects.get(pk=customer.pk)


def preview(client, policy, content=FILE):
    data = {"resource": "0", "format": "0", "import_file": SimpleUploadedFile("people.csv", content)}
    if policy:
        data["duplicates"] = policy
    return client.post(reverse("admin:crm_customer_import"), data)


def confirm(client, response):
    form = response.context["confirm_form"]
    data = {name: form.initial[name] for name in
            ("import_file_name", "original_file_name", "format", "resource", "duplicates")}
    return client.post(reverse("admin:crm_customer_process_import"), data, follow=True)


def snapshot():
    return (
        sorted(Customer.objects.values_list("pk", "first_name", "last_name", "position", "source")),
        sorted(Phone.objects.values_list("pk", "object_id", "number")),
        sorted(Email.objects.values_list("pk", "object_id", "address")),
        sorted(Customer.tags.through.objects.values_list("customer_id", "tag_id")),
    )


def test_admin_import_skip_policy_previews_and_skips_duplicates(admin_client, ivan):
    response = preview(admin_client, "skip")
    page = html.unescape(response.content.decode())

    assert f"skipped, a duplicate of customer #{ivan.pk}: same phone" in page
    assert Customer.objects.count() == 1  # the preview wrote nothing

    result = confirm(admin_client, response)
    text = html.unescape(result.content.decode())
    anna = Customer.objects.get(first_name="Anna")
    assert Customer.objects.count() == 2
    assert f"line 4: skipped, a duplicate of customer #{anna.pk} (line 3 of this file): same email" in text
    ivan.refresh_from_db()
    assert ivan.position == ""


def test_admin_import_update_policy_fills_and_unites(admin_client, ivan):
    result = confirm(admin_client, preview(admin_client, "update"))

    ivan.refresh_from_db()
    assert ivan.position == "Director" and ivan.first_name == "Ivan"
    assert sorted(ivan.emails.values_list("address", flat=True)) == ["ivan@example.com"]
    assert ivan.phones.count() == 1
    assert set(ivan.tags.values_list("name", flat=True)) == {"old", "vip"}
    assert Customer.objects.count() == 2
    assert f"line 2: updated customer #{ivan.pk}: same phone" in html.unescape(result.content.decode())


def test_admin_import_create_policy_flags(admin_client, ivan):
    result = confirm(admin_client, preview(admin_client, None))  # create is the default

    assert Customer.objects.count() == 4
    batch = ImportBatch.objects.get()
    assert (batch.source, batch.policy, batch.created, batch.flagged) == ("admin", "create", 3, 2)
    assert f"flagged as a possible duplicate of customer #{ivan.pk}" in html.unescape(result.content.decode())


@pytest.mark.parametrize("policy", ["skip", "update", "create"])
def test_admin_import_undo_action_restores_every_row(admin_client, ivan, policy):
    before = snapshot()
    confirm(admin_client, preview(admin_client, policy))
    assert snapshot() != before
    batch = ImportBatch.objects.get()

    response = admin_client.post(
        reverse("admin:crm_importbatch_changelist"),
        {"action": "undo_imports", "_selected_action": [batch.pk]},
        follow=True,
    )

    assert "1 import undone." in response.content.decode()
    assert snapshot() == before


def test_admin_import_undo_refuses_with_a_message_when_edited(admin_client, ivan):
    confirm(admin_client, preview(admin_client, "update"))
    ivan.refresh_from_db()
    ivan.position = "CEO"
    ivan.save()
    batch = ImportBatch.objects.get()

    response = admin_client.post(
        reverse("admin:crm_importbatch_changelist"),
        {"action": "undo_imports", "_selected_action": [batch.pk]},
        follow=True,
    )

    text = html.unescape(response.content.decode())
    assert f"Import #{batch.pk} was not undone" in text and "changed after the import" in text
    ivan.refresh_from_db()
    assert ivan.position == "CEO"


def test_admin_import_hostile_file_is_a_clear_error(admin_client, ivan):
    response = preview(admin_client, "update", ("first_name,phone\n" + "x" * 10_000 + ",abc\n").encode())

    assert response.status_code == 200
    assert "confirm_form" not in response.context  # nothing to confirm
    assert "at most 100 characters" in html.unescape(response.content.decode())
    assert Customer.objects.count() == 1


def test_admin_import_undo_removes_the_companies_it_created(admin_client, ivan):
    from crm.models import Company

    kept = factories.CompanyFactory(name="Old Mill")
    content = (
        "first_name,last_name,company_name\n"
        "Maria,Stone,Rocket Works\n"
        "Oleg,Frost,Old Mill\n"
    ).encode()
    confirm(admin_client, preview(admin_client, "create", content))
    assert set(Company.objects.values_list("name", flat=True)) == {"Old Mill", "Rocket Works"}
    batch = ImportBatch.objects.get()
    assert batch.companies == [Company.objects.get(name="Rocket Works").pk]

    admin_client.post(
        reverse("admin:crm_importbatch_changelist"),
        {"action": "undo_imports", "_selected_action": [batch.pk]},
        follow=True,
    )

    assert list(Company.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Customer.objects.filter(first_name__in=["Maria", "Oleg"]).exists()
