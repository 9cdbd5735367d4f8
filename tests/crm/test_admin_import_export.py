"""CSV and XLSX import and export of customers, companies, leads and orders through the admin's own screens."""
import csv
import datetime
import html
import io
from decimal import Decimal

import openpyxl
import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm import models
from crm.importing.resources import CustomerResource, LeadResource, OrderResource
from tests import factories

CSV, XLSX = "0", "1"  # the admin's format choices, in the order of EntityImportExportMixin.formats
# The fixed bound of the export's query count: the same for 3 customers as for 30.
EXPORT_MAX_QUERIES = 11


def _csv(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _xlsx(rows) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _preview(client, model_name, content, file_format=CSV):
    """Post a file to the first import step (the dry run and its preview)."""
    name = "records.csv" if file_format == CSV else "records.xlsx"
    return client.post(
        reverse(f"admin:crm_{model_name}_import"),
        {"resource": "0", "format": file_format, "import_file": SimpleUploadedFile(name, content)},
    )


def _confirm(client, model_name, preview):
    """Post the preview's "Confirm import" form."""
    form = preview.context["confirm_form"]
    assert form is not None, "the preview offers no confirmation"
    data = {name: form.initial[name] for name in ("import_file_name", "original_file_name", "format", "resource")}
    return client.post(reverse(f"admin:crm_{model_name}_process_import"), data)


def _import(client, model_name, content, file_format=CSV):
    preview = _preview(client, model_name, content, file_format)
    assert preview.status_code == 200
    assert not preview.context["result"].has_errors(), preview.context["result"].row_errors()
    assert not preview.context["result"].has_validation_errors(), preview.context["result"].invalid_rows
    response = _confirm(client, model_name, preview)
    assert response.status_code == 302
    # the result page: the import just made, with what each row became
    batch = models.ImportBatch.objects.latest("pk")
    assert response.url == reverse("admin:crm_importbatch_change", args=[batch.pk])
    return response


def _export(client, model_name, resource_class, file_format=CSV, query=""):
    """Post the export form with every column ticked and return the file's bytes."""
    prefix = resource_class.__name__.lower()
    data = {"format": file_format, "resource": "0"}
    data.update({f"{prefix}_{name}": "on" for name in resource_class().get_export_order()})
    response = client.post(reverse(f"admin:crm_{model_name}_export") + query, data)
    assert response.status_code == 200, response.content[:500]
    assert "attachment" in response["Content-Disposition"]
    return response.content


def _csv_rows(content: bytes):
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def _counts():
    return {
        model.__name__: model.objects.count()
        for model in (
            models.Customer, models.Company, models.Lead, models.Order, models.Phone, models.Email,
            models.MessengerHandle, models.Tag,
        )
    }


@pytest.fixture
def lead_pipeline(db):
    pipeline = factories.PipelineFactory(name="Leads", kind=models.Pipeline.Kind.LEAD)
    factories.StageFactory(pipeline=pipeline, name="New", sort_order=0)
    factories.StageFactory(pipeline=pipeline, name="Qualified", sort_order=1)
    return pipeline


# --- Import: good files -------------------------------------------------------------------------------------------


def test_admin_customer_csv_import_creates_customers_with_contacts_company_and_tags(admin_client, db):
    # Given a company and a manager already in the CRM
    acme = factories.CompanyFactory(name="Acme LLC")
    olga = factories.UserFactory(username="olga")
    content = _csv(
        [
            ["external_id", "last_name", "first_name", "company_name", "birthday", "phone", "email", "messenger",
             "owner", "tags"],
            ["c-1", "Petrov", "Ivan", "Acme LLC", "1985-04-12", "8 (912) 345-67-89; +7 495 123-45-67",
             "ivan@example.com;IVAN.P@work.example", "telegram:@ivanp", "olga", "vip; wholesale"],
            ["c-2", "Smirnova", "Olga", "Globex GmbH", "31.12.1990", "", "olga@example.com",
             "whatsapp:+79990001122", "", "vip"],
        ]
    )
    # When the file is previewed
    preview = _preview(admin_client, "customer", content)
    # Then the preview shows both rows as new and nothing is saved yet
    assert [row.import_type for row in preview.context["result"].valid_rows()] == ["new", "new"]
    assert models.Customer.objects.count() == 0
    # And when the import is confirmed
    response = _confirm(admin_client, "customer", preview)
    assert response.status_code == 302
    assert "Import finished: 2 new" in [str(message) for message in get_messages(response.wsgi_request)][0]
    # Then Ivan is linked to the existing company, with both phones (international forms computed), both
    # emails, his Telegram handle, his manager and tags
    ivan = models.Customer.objects.get(external_id="c-1")
    assert (ivan.full_name, ivan.company, ivan.birthday, ivan.owner) == (
        "Petrov Ivan", acme, datetime.date(1985, 4, 12), olga
    )
    assert list(ivan.phones.values_list("number", "e164", "is_primary")) == [
        ("8 (912) 345-67-89", "+79123456789", True),
        ("+7 495 123-45-67", "+74951234567", False),
    ]
    assert sorted(ivan.emails.values_list("address", flat=True)) == ["IVAN.P@work.example", "ivan@example.com"]
    assert list(ivan.messengers.values_list("channel", "username", "chat_id")) == [("telegram", "ivanp", "")]
    assert sorted(ivan.tags.values_list("name", flat=True)) == ["vip", "wholesale"]
    # And Olga's company, which did not exist, was created
    smirnova = models.Customer.objects.get(external_id="c-2")
    assert smirnova.company.name == "Globex GmbH"
    assert smirnova.birthday == datetime.date(1990, 12, 31)
    # (a number alone is a chat id, as import_csv reads it and as the intake stores WhatsApp chats)
    assert list(smirnova.messengers.values_list("channel", "username", "chat_id")) == [
        ("whatsapp", "", "+79990001122")
    ]
    assert models.Company.objects.count() == 2
    assert models.Tag.objects.count() == 2


def test_admin_customer_reimport_by_external_id_updates_and_adds_only_new_contacts(admin_client, db):
    # Given Ivan with external ID c-1, a phone, an email and a tag
    ivan = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", external_id="c-1")
    factories.PhoneFactory(content_object=ivan, number="+79123456789", is_primary=True)
    factories.EmailFactory(content_object=ivan, address="ivan@example.com")
    ivan.tags.add(factories.TagFactory(name="old"))
    # When a file with c-1 is imported: a new surname, his phone in another form plus a new one, his email in
    # capitals, and another tag
    _import(
        admin_client,
        "customer",
        _csv(
            [
                ["external_id", "last_name", "first_name", "phone", "email", "tags"],
                ["c-1", "Petrov-Vodkin", "Ivan", "8 912 345 67 89; 8 (495) 123-45-67", "IVAN@example.com", "new"],
            ]
        ),
    )
    # Then Ivan is updated, not duplicated, and gains only what he did not have
    ivan = models.Customer.objects.get()
    assert ivan.last_name == "Petrov-Vodkin"
    assert list(ivan.phones.values_list("e164", "is_primary")) == [("+79123456789", True), ("+74951234567", False)]
    assert list(ivan.emails.values_list("address", flat=True)) == ["ivan@example.com"]
    assert sorted(ivan.tags.values_list("name", flat=True)) == ["new", "old"]


def test_admin_customer_xlsx_import_reads_date_and_number_cells(admin_client, db):
    # Given a spreadsheet whose birthday is a date cell and whose phone and external ID are number cells
    content = _xlsx(
        [
            ["external_id", "last_name", "first_name", "birthday", "phone", "email", "exclude_from_repeat_sales"],
            [1001, "Kuznetsov", "Pavel", datetime.datetime(1979, 3, 8), 79161234567, "pavel@example.com", "yes"],
            [1002, "Orlova", "Anna", None, None, None, None],
        ]
    )
    # When it is imported through the admin
    _import(admin_client, "customer", content, XLSX)
    # Then the cells are read as the user meant them
    pavel = models.Customer.objects.get(external_id="1001")
    assert pavel.birthday == datetime.date(1979, 3, 8)
    assert list(pavel.phones.values_list("number", "e164")) == [("79161234567", "+79161234567")]
    assert pavel.exclude_from_repeat_sales is True
    anna = models.Customer.objects.get(external_id="1002")
    assert (anna.birthday, anna.phones.count(), anna.exclude_from_repeat_sales) == (None, 0, False)


def test_admin_lead_xlsx_import_puts_leads_in_the_named_stage(admin_client, lead_pipeline):
    # Given a lead pipeline with the stages New and Qualified
    content = _xlsx(
        [
            ["title", "channel", "pipeline", "stage", "last_name", "phone", "email", "amount", "is_repeat"],
            ["Call back", "Telegram", "Leads", "Qualified", "Sidorov", "8 903 111-22-33", "s@example.com", 1500.5, 1],
            ["Price request", "web form", None, None, "Ivanova", None, None, None, None],
        ]
    )
    # When it is imported
    _import(admin_client, "lead", content, XLSX)
    # Then the first lead is in Qualified, the second in the pipeline's first stage
    call_back = models.Lead.objects.get(title="Call back")
    assert (call_back.channel, call_back.stage.name, call_back.amount, call_back.is_repeat) == (
        "telegram", "Qualified", Decimal("1500.50"), True
    )
    assert list(call_back.phones.values_list("e164", flat=True)) == ["+79031112233"]
    price = models.Lead.objects.get(title="Price request")
    assert (price.channel, price.pipeline, price.stage.name) == ("web_form", lead_pipeline, "New")


def test_admin_order_csv_import_links_customers_and_updates_by_number(admin_client, db):
    # Given a customer with an external ID and an order A-1
    customer = factories.CustomerFactory(external_id="c-9")
    existing = factories.OrderFactory(number="A-1", customer=None, total=Decimal("10"))
    # When a file updates A-1 and adds A-2
    _import(
        admin_client,
        "order",
        _csv(
            [
                ["number", "status", "customer_external_id", "total", "phone", "email", "tags"],
                ["A-1", "shipped", "c-9", "1 250,50", "8 912 345-67-89", "buyer@example.com", ""],
                ["A-2", "New", "", "99", "", "", "web"],
            ]
        ),
    )
    # Then A-1 is updated in place and A-2 is new
    existing.refresh_from_db()
    assert (existing.status, existing.customer, existing.total, existing.phone_e164) == (
        "shipped", customer, Decimal("1250.50"), "+79123456789"
    )
    new = models.Order.objects.get(number="A-2")
    assert (new.status, new.total, list(new.tags.values_list("name", flat=True))) == ("new", Decimal("99"), ["web"])


def test_admin_company_csv_import_creates_companies_with_contacts(admin_client, db):
    _import(
        admin_client,
        "company",
        _csv(
            [
                ["name", "tax_id", "phone", "email"],
                ["Initech Inc", "7701234567", "+1 415 555 0100", "info@initech.example"],
            ]
        ),
    )
    company = models.Company.objects.get()
    assert (company.name, company.tax_id) == ("Initech Inc", "7701234567")
    assert list(company.phones.values_list("e164", flat=True)) == ["+14155550100"]
    assert list(company.emails.values_list("address", flat=True)) == ["info@initech.example"]


# --- Import: bad files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "rows", "field", "message"),
    [
        (
            "customer",
            [
                ["external_id", "last_name", "company_name", "birthday", "phone", "email", "tags"],
                ["c-1", "Petrov", "New Co LLC", "1985-04-12", "+79123456789", "ivan@example.com", "vip"],
                ["c-2", "Smirnova", "", "31.02.1990", "+79990001122", "olga@example.com", ""],
            ],
            "birthday",
            "'31.02.1990' is not a date",
        ),
        (
            "lead",
            [
                ["title", "pipeline", "stage", "phone", "email", "tags"],
                ["Good lead", "Leads", "New", "+79123456789", "good@example.com", "vip"],
                ["Bad lead", "Leads", "Negotiation", "+79990001122", "bad@example.com", ""],
            ],
            "stage",
            "There is no stage \u201cNegotiation\u201d in the pipeline \u201cLeads\u201d.",
        ),
        (
            "order",
            [
                ["number", "total", "email", "tags"],
                ["A-1", "100", "a@example.com", "vip"],
                ["A-2", "-5", "b@example.com", ""],
            ],
            "total",
            "'-5' is negative",
        ),
    ],
)
def test_admin_import_of_a_bad_file_reports_the_line_and_imports_nothing(
    admin_client, lead_pipeline, model_name, rows, field, message
):
    # Given a file whose first record is good and whose second (line 3) is bad
    before = _counts()
    # When it is submitted for import
    response = _preview(admin_client, model_name, _csv(rows))
    # Then the bad line is reported with its number, field and reason, and no confirmation is offered
    result = response.context["result"]
    assert [invalid.number for invalid in result.invalid_rows] == [3]
    assert message in " ".join(result.invalid_rows[0].field_specific_errors[field])
    content = response.content.decode()
    assert "Some rows failed to validate" in content
    assert html.escape(message) in content
    assert response.context.get("confirm_form") is None
    # And nothing of the file is in the database: no records, phones, emails, companies or tags
    assert _counts() == before


def test_admin_import_confirm_rolls_back_the_whole_file_when_a_row_fails_on_confirm(admin_client, lead_pipeline):
    # Given a previewed lead file whose second lead goes to the stage Qualified
    content = _csv(
        [
            ["title", "pipeline", "stage", "phone", "email", "messenger", "tags"],
            ["First", "Leads", "New", "+79123456789", "first@example.com", "telegram:@first", "imported"],
            ["Second", "Leads", "Qualified", "+79990001122", "second@example.com", "", ""],
        ]
    )
    preview = _preview(admin_client, "lead", content)
    before = _counts()
    # When the stage is deleted before the import is confirmed
    lead_pipeline.stages.filter(name="Qualified").delete()
    response = _confirm(admin_client, "lead", preview)
    # Then the user is sent back to the import page, told that nothing was imported and which line failed
    assert response.status_code == 302
    assert response.url == reverse("admin:crm_lead_import")
    [message] = [str(message) for message in get_messages(response.wsgi_request)]
    assert message.startswith("Nothing was imported: line 3: stage: There is no stage \u201cQualified\u201d")
    # And the first lead, its phone, email, handle and new tag were rolled back with it
    assert _counts() == before
    assert not models.Tag.objects.filter(name="imported").exists()


def test_admin_import_of_an_unknown_owner_or_bad_phone_reports_each_problem(admin_client, db):
    # Given a row naming a manager who does not exist and a phone longer than the database allows
    content = _csv([["last_name", "owner", "phone"], ["Petrov", "nobody", "1" * 70]])
    # When it is previewed
    result = _preview(admin_client, "customer", content).context["result"]
    # Then both problems of line 2 are reported
    errors = result.invalid_rows[0].field_specific_errors
    assert result.invalid_rows[0].number == 2
    assert "There is no user \u201cnobody\u201d" in errors["owner"][0]
    assert "longer than 64 characters" in errors["phones"][0]
    assert models.Customer.objects.count() == 0


# --- Export -------------------------------------------------------------------------------------------------------


@pytest.fixture
def ivan(db):
    company = factories.CompanyFactory(name="Acme LLC")
    customer = factories.CustomerFactory(
        first_name="Ivan", last_name="Petrov", company=company, external_id="c-1",
        owner=factories.UserFactory(username="olga"),
    )
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89", is_primary=True)
    factories.PhoneFactory(content_object=customer, number="8 495 123-45-67")
    factories.EmailFactory(content_object=customer, address="ivan@example.com")
    factories.EmailFactory(content_object=customer, address="ivan@work.example")
    factories.MessengerFactory(content_object=customer, username="ivanp", chat_id="555")
    customer.tags.add(factories.TagFactory(name="wholesale"), factories.TagFactory(name="vip"))
    return customer


def test_admin_customer_csv_export_joins_contacts_and_names_company_and_tags(admin_client, ivan):
    # Given Ivan with two phones, two emails, a Telegram handle, a company and two tags, and an archived customer
    factories.CustomerFactory(last_name="Merged", is_archived=True)
    # When the customers are exported as CSV
    rows = _csv_rows(_export(admin_client, "customer", CustomerResource))
    # Then Ivan is one row with his contacts in one column each, and the archived customer is not exported
    [row] = rows
    assert row["id"] == str(ivan.pk)
    assert row["external_id"] == "c-1"
    # (a phone starting with "+" is prefixed with a quote, so that a spreadsheet does not read it as a formula)
    assert row["phone"] == "'+7 912 345-67-89; 8 495 123-45-67"
    assert row["email"] == "ivan@example.com; ivan@work.example"
    assert row["messenger"] == "telegram:@ivanp#555"
    assert row["company_name"] == "Acme LLC"
    assert row["tags"] == "vip; wholesale"
    assert row["owner"] == "olga"


def test_admin_customer_export_then_import_changes_nothing(admin_client, ivan):
    # Given an export of the customers
    exported = _export(admin_client, "customer", CustomerResource)
    before = _counts()
    # When the same file is imported back
    _import(admin_client, "customer", exported)
    # Then no record, phone, email, handle, company or tag was added
    assert _counts() == before
    ivan.refresh_from_db()
    assert ivan.company.name == "Acme LLC"


def test_admin_customer_export_of_records_without_external_id_imports_back_in_place(admin_client, db):
    # Given customers made in the admin, without external IDs
    first = factories.CustomerFactory(last_name="First")
    factories.PhoneFactory(content_object=first, number="+79123456789")
    factories.CustomerFactory(last_name="Second")
    exported = _csv_rows(_export(admin_client, "customer", CustomerResource))
    # When the file is edited and imported back
    for row in exported:
        row["position"] = "Buyer"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(exported[0]))
    writer.writeheader()
    writer.writerows(exported)
    _import(admin_client, "customer", buffer.getvalue().encode())
    # Then the same two customers are updated (matched by their id), not duplicated
    assert list(models.Customer.objects.order_by("last_name").values_list("last_name", "position")) == [
        ("First", "Buyer"), ("Second", "Buyer")
    ]
    assert models.Phone.objects.count() == 1


def test_admin_order_xlsx_export(admin_client, db):
    # Given an order of Ivan's
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", external_id="c-1")
    factories.OrderFactory(number="A-7", customer=customer, total=Decimal("1250.50"), status="shipped")
    # When the orders are exported as XLSX
    content = _export(admin_client, "order", OrderResource, XLSX)
    # Then the workbook has the order with its customer and total
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    record = dict(zip(header, rows[0]))
    assert len(rows) == 1
    assert (record["number"], record["status"], record["customer"], record["customer_external_id"]) == (
        "A-7", "shipped", "Petrov Ivan", "c-1"
    )
    assert Decimal(str(record["total"])) == Decimal("1250.50")


def test_admin_lead_csv_export_respects_the_list_filters(admin_client, lead_pipeline):
    # Given a repeat and a new lead
    stage = lead_pipeline.stages.get(name="New")
    repeat = factories.LeadFactory(title="Again", stage=stage, pipeline=lead_pipeline, is_repeat=True)
    factories.PhoneFactory(content_object=repeat, number="+79123456789")
    factories.LeadFactory(title="Fresh", stage=stage, pipeline=lead_pipeline)
    # When the leads list filtered to repeat leads is exported
    rows = _csv_rows(_export(admin_client, "lead", LeadResource, query="?kind=repeat"))
    # Then only the repeat lead is in the file, with its pipeline, stage and phone
    assert [(row["title"], row["pipeline"], row["stage"], row["phone"], row["is_repeat"]) for row in rows] == [
        ("Again", "Leads", "New", "'+79123456789", "1")
    ]


@pytest.mark.parametrize("rows", [3, 30])
def test_admin_customer_export_query_count_does_not_grow_with_rows(
    admin_client, django_assert_max_num_queries, rows
):
    # Given 3 or 30 customers with a company, phones, emails, a handle and tags
    company = factories.CompanyFactory()
    tag = factories.TagFactory(name="vip")
    for _index in range(rows):
        customer = factories.CustomerFactory(company=company)
        customer.tags.add(tag)
        factories.PhoneFactory(content_object=customer)
        factories.EmailFactory(content_object=customer)
        factories.MessengerFactory(content_object=customer)
    # When they are exported, the same number of queries serves both
    with django_assert_max_num_queries(EXPORT_MAX_QUERIES):
        content = _export(admin_client, "customer", CustomerResource)
    # Then every customer is in the file
    assert len(_csv_rows(content)) == rows


def test_admin_import_needs_add_and_change_permissions_export_needs_view(client, db):
    # Given a manager who may only view customers
    from django.contrib.auth.models import Permission

    viewer = factories.UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(viewer)
    # Then the customer list offers no import, the import page refuses him, and the export works
    changelist = client.get(reverse("admin:crm_customer_changelist")).content.decode()
    assert reverse("admin:crm_customer_import") not in changelist
    assert reverse("admin:crm_customer_export") in changelist
    assert client.get(reverse("admin:crm_customer_import")).status_code == 403
    content = _csv([["last_name"], ["Intruder"]])
    assert _preview(client, "customer", content).status_code == 403
    assert models.Customer.objects.count() == 0
    assert client.get(reverse("admin:crm_customer_export")).status_code == 200


def test_admin_import_reads_headers_typed_by_people(admin_client, db):
    # Given a file whose headers are capitalised and spaced as a person would type them
    content = _csv(
        [
            ["External ID", " Last name ", "Company name", "Phone", "E-mail"],
            ["c-7", "Orlov", "Orlov LLC", "+79123456789", "orlov@example.com"],
        ]
    )
    # When it is imported
    _import(admin_client, "customer", content)
    # Then every column was read
    customer = models.Customer.objects.get()
    assert (customer.external_id, customer.last_name, customer.company.name) == ("c-7", "Orlov", "Orlov LLC")
    assert customer.phones.get().e164 == "+79123456789"
    assert customer.emails.get().address == "orlov@example.com"


def test_admin_import_never_takes_another_systems_ID_column_for_this_crms_id(admin_client, db):
    # Given a customer of this CRM and a file exported from another CRM, whose "ID" column holds that number
    existing = factories.CustomerFactory(last_name="Local")
    content = _csv([["ID", "last_name"], [str(existing.pk), "Foreign"]])
    # When the file is imported
    _import(admin_client, "customer", content)
    # Then the foreign row is a new customer and the local one is untouched
    existing.refresh_from_db()
    assert existing.last_name == "Local"
    assert models.Customer.objects.filter(last_name="Foreign").count() == 1
