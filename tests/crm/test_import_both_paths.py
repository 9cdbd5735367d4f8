"""One file, two doors: `import_csv` and the admin's Import make the same records from the same file."""
import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm import models
from crm.importing import records_import_csv
from tests import factories

CUSTOMER_HEADER = [
    "external_id", "last_name", "first_name", "company_name", "position", "birthday", "phone", "email",
    "messenger", "tags", "exclude_from_repeat_sales", "source",
]
CUSTOMER_ROWS = [
    ["c-1", "Petrov", "Ivan", "Acme LLC", "Director", "01.03.1990", "8 (912) 345-67-89; +1 415 555 0100",
     "ivan@example.com, IVAN@example.com; ivan@work.example", "123456", "vip; b2b", "+", "web"],
    ["c-2", "Smirnova", "Anna", "", "", "1985-12-31", "+7 912 000-11-22", "anna@example.com",
     "tg:@anna_s", "vip", "д", ""],
    ["c-3", "Lee", "Mary", "Globex GmbH", "", "1/3/1990", "'+44 20 7946 0958", "", "https://t.me/marylee",
     "", "нет", ""],
    ["c-4", "Brown", "John", "Acme LLC", "", "", "", "", "telegram:@jb#42; whatsapp:+79990001122", "", "x", ""],
    ["c-5", "Müller", "Klaus", "", "", "", "not a phone", "", "", "", "0", ""],
]


def _text(header, rows, delimiter=",") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows([header, *rows])
    return buffer.getvalue()


def _import_with_command(text: str, entity: str) -> None:
    report = records_import_csv(entity=entity, file=io.BytesIO(text.encode()))
    assert not report.skipped, report.skipped


def _import_in_admin(client, text: str, model_name: str) -> None:
    url = reverse(f"admin:crm_{model_name}_import")
    preview = client.post(
        url, {"resource": "0", "format": "0", "import_file": SimpleUploadedFile("file.csv", text.encode())}
    )
    assert preview.status_code == 200
    form = preview.context["confirm_form"]
    assert form is not None, (preview.context["form"].errors, preview.context.get("result") and [
        (row.number, row.error_dict) for row in preview.context["result"].invalid_rows])
    data = {name: form.initial[name] for name in ("import_file_name", "original_file_name", "format", "resource")}
    response = client.post(reverse(f"admin:crm_{model_name}_process_import"), data)
    assert response.status_code == 302


def _contacts(record):
    return (
        sorted(record.phones.values_list("number", "e164")),
        sorted(address.casefold() for address in record.emails.values_list("address", flat=True)),
        sorted(record.messengers.values_list("channel", "username", "chat_id")),
        sorted(record.tags.values_list("name", flat=True)),
    )


def _customers():
    return {
        customer.external_id: (
            customer.first_name, customer.last_name, customer.position, customer.birthday, customer.source,
            customer.exclude_from_repeat_sales, customer.company.name if customer.company else "", *_contacts(customer),
        )
        for customer in models.Customer.objects.select_related("company")
    }


def _orders():
    return {
        order.number: (order.external_id, order.status, order.total, order.email, order.phone, order.phone_e164,
                       order.customer.external_id if order.customer else "")
        for order in models.Order.objects.select_related("customer")
    }


def _forget_everything():
    for model in (models.Order, models.Customer, models.Company, models.Phone, models.Email,
                  models.MessengerHandle, models.Tag):
        model.objects.all().delete()


def _both_ways(admin_client, text, entity, snapshot, before=lambda: None):
    before()
    _import_with_command(text, entity)
    by_command = snapshot()
    _forget_everything()
    before()
    _import_in_admin(admin_client, text, entity)
    by_admin = snapshot()
    _forget_everything()
    return by_command, by_admin


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_import_both_paths_make_the_same_customers(admin_client, db, delimiter):
    # Given one customers file with every kind of cell, written with this separator
    text = _text(CUSTOMER_HEADER, CUSTOMER_ROWS, delimiter)
    # When it is imported on the command line and, separately, in the admin
    by_command, by_admin = _both_ways(admin_client, text, "customer", _customers)
    # Then both made the same customers, companies, contacts and tags
    assert by_admin == by_command
    # And the cells were read as the shared rules say
    ivan = by_command["c-1"]
    assert ivan[5] is True and ivan[7] == [("+1 415 555 0100", "+14155550100"), ("8 (912) 345-67-89", "+79123456789")]
    assert ivan[8] == ["ivan@example.com", "ivan@work.example"]
    assert ivan[9] == [("telegram", "", "123456")]
    assert by_command["c-2"][5] is True and by_command["c-3"][5] is False and by_command["c-4"][5] is True
    assert by_command["c-3"][3].isoformat() == "1990-03-01"
    assert by_command["c-3"][7] == [("+44 20 7946 0958", "+442079460958")]
    assert by_command["c-3"][9] == [("telegram", "marylee", "")]
    assert by_command["c-4"][9] == [("telegram", "jb", "42"), ("whatsapp", "", "+79990001122")]


@pytest.mark.parametrize(
    ("written", "amount"),
    [("1.234,50", "1234.50"), ("1,234.50", "1234.50"), ("1 234,50", "1234.50"), ("12,5", "12.5"), ("99", "99")],
)
def test_import_both_paths_read_amounts_in_both_decimal_styles(admin_client, db, written, amount):
    # Given an order file whose total is written in one of the decimal styles, and its customer
    text = _text(
        ["number", "status", "total", "email", "phone", "customer_external_id"],
        [["A-1", "new", written, "ivan@example.com", "8 912 345 67 89", "c-1"]],
        ";",
    )

    def customer():
        factories.CustomerFactory(external_id="c-1")

    # When it is imported both ways
    by_command, by_admin = _both_ways(admin_client, text, "order", _orders, before=customer)
    # Then both read the same amount
    assert by_admin == by_command
    assert by_command["A-1"][2] == Decimal(amount)


_YES = st.sampled_from(["1", "yes", "Y", "x", "+", "да", "Д", "true"])
_NO = st.sampled_from(["0", "no", "N", "-", "нет", "н", "false"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flags=st.lists(st.one_of(_YES, _NO), min_size=1, max_size=4),
    amounts=st.lists(st.decimals(min_value=0, max_value=Decimal("999999.99"), places=2), min_size=4, max_size=4),
    comma_decimal=st.booleans(),
)
def test_import_both_paths_agree_on_any_flags_and_amounts(admin_client, db, flags, amounts, comma_decimal):
    # Given customers with any yes/no spelling and orders with any amount, written in either decimal style
    customers = _text(
        ["external_id", "last_name", "exclude_from_repeat_sales"],
        [[f"c-{index}", "Name", flag] for index, flag in enumerate(flags)],
    )

    def written(amount):
        plain = f"{amount:,.2f}"
        return plain.replace(",", " ").replace(".", ",") if comma_decimal else plain

    orders = _text(["number", "total"], [[f"A-{index}", written(amount)] for index, amount in enumerate(amounts)], ";")
    # When both files are imported both ways
    by_command_customers, by_admin_customers = _both_ways(admin_client, customers, "customer", _customers)
    by_command_orders, by_admin_orders = _both_ways(admin_client, orders, "order", _orders)
    # Then they agree, and on what the cells say
    assert by_admin_customers == by_command_customers
    assert [by_command_customers[f"c-{index}"][5] for index in range(len(flags))] == [
        flag.casefold() in {"1", "yes", "y", "x", "+", "да", "д", "true"} for flag in flags
    ]
    assert by_admin_orders == by_command_orders
    assert [by_command_orders[f"A-{index}"][2] for index in range(len(amounts))] == amounts
