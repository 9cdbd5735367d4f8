"""The CSV import: the import_csv command and the records_import_csv service."""
from decimal import Decimal
from io import BytesIO, StringIO

import pytest
from django.core.management import CommandError, call_command

from crm.models import Company, Customer, Lead, Order, Pipeline, Stage, Tag
from crm.importing import records_import_csv
from dedup.signals import records_bulk_saved
from tests import factories


def write_csv(tmp_path, text, *, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run_import(entity, path, *, verbosity=1):
    out, err = StringIO(), StringIO()
    call_command("import_csv", entity, str(path), "--no-progress", verbosity=verbosity, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def bulk_saved_log():
    """Record every records_bulk_saved signal, as the duplicate index receives it."""
    calls = []

    def receiver(sender, model, pks, **kwargs):
        calls.append((sender, model, list(pks)))

    records_bulk_saved.connect(receiver, weak=False, dispatch_uid="test-import-log")
    yield calls
    records_bulk_saved.disconnect(dispatch_uid="test-import-log")


@pytest.fixture
def lead_pipeline(db):
    pipeline = Pipeline.objects.create(name="Leads", kind=Pipeline.Kind.LEAD)
    Stage.objects.create(pipeline=pipeline, name="Incoming", semantic=Stage.Semantic.OPEN, sort_order=1)
    Stage.objects.create(pipeline=pipeline, name="Converted", semantic=Stage.Semantic.WON, sort_order=2)
    return pipeline


def test_import_csv_keeps_good_rows_and_reports_bad_ones_by_line(tmp_path, db):
    # given a file whose second data row (line 3) has an impossible birthday
    path = write_csv(
        tmp_path,
        "first_name,last_name,birthday\n"
        "Ivan,Petrov,1990-02-28\n"
        "Anna,Lee,31/02/1990\n"
        "Olga,Smirnova,15.03.1985\n",
    )

    # when it is imported
    out, _err = run_import("customer", path)

    # then the good rows are there, the bad one is named by its line, and the summary counts them
    assert sorted(Customer.objects.values_list("last_name", flat=True)) == ["Petrov", "Smirnova"]
    assert Customer.objects.get(last_name="Smirnova").birthday.isoformat() == "1985-03-15"
    assert "line 3: birthday: '31/02/1990' is not a date" in out
    assert "created: 2" in out
    assert "skipped: 1" in out


def test_import_csv_reports_every_problem_of_a_row_on_its_line(tmp_path, db):
    # given, after a multi-line quoted cell, a row with a bad flag and a too-long name, and one with a ghost owner
    path = write_csv(
        tmp_path,
        'first_name,last_name,owner,exclude_from_repeat_sales,note\n'
        'Ivan,Petrov,,no,"first line\nsecond line"\n'
        f'Anna,{"L" * 101},,maybe,\n'
        'Olga,Lee,ghost,,\n',
    )

    # when it is imported
    report = records_import_csv(entity="customer", path=path)

    # then the records starting on lines 4 and 5 are skipped with every reason, the first one is kept
    assert report.created == 1
    assert [str(error) for error in report.skipped] == [
        "line 4: last_name: longer than 100 characters; "
        "exclude_from_repeat_sales: 'maybe' is neither yes nor no",
        "line 5: owner: there is no user 'ghost'",
    ]
    assert Customer.objects.get().custom_fields == {"note": "first line\nsecond line"}


def test_import_csv_updates_the_record_with_a_known_external_id(tmp_path, db):
    # given a customer known by external ID, with a phone and a custom field
    existing = factories.CustomerFactory(external_id="crm-1", first_name="Ivan", last_name="Petrov",
                                         custom_fields={"card": "gold"})
    factories.PhoneFactory(content_object=existing, number="+7 912 345-67-89")
    path = write_csv(
        tmp_path,
        "external_id,last_name,position,phone,city\n"
        "crm-1,Petrov-Vodkin,Director,8 (912) 345-67-89; +7 912 000-11-22,Kazan\n"
        "crm-2,Lee,,,\n",
    )

    # when a file with the same external ID is imported
    report = records_import_csv(entity="customer", path=path)

    # then that record is updated, not duplicated; its old phone is not added twice; empty cells keep values
    assert (report.created, report.updated) == (1, 1)
    existing.refresh_from_db()
    assert Customer.objects.filter(external_id="crm-1").count() == 1
    assert (existing.first_name, existing.last_name, existing.position) == ("Ivan", "Petrov-Vodkin", "Director")
    assert existing.custom_fields == {"card": "gold", "city": "Kazan"}
    assert sorted(existing.phones.values_list("e164", flat=True)) == ["+79120001122", "+79123456789"]


def test_import_csv_links_companies_by_exact_name_and_creates_missing_ones_once(tmp_path, db):
    # given one existing company
    acme = Company.objects.create(name="Acme LLC")
    path = write_csv(
        tmp_path,
        "first_name,company_name\nIvan,Acme LLC\nAnna,Beta GmbH\nOlga,Beta GmbH\nPetr,\n",
    )

    # when customers naming it and a new company are imported
    report = records_import_csv(entity="customer", path=path)

    # then the existing company is reused and the new one created exactly once for both rows
    assert Customer.objects.get(first_name="Ivan").company == acme
    beta = Company.objects.get(name="Beta GmbH")
    assert set(beta.customers.values_list("first_name", flat=True)) == {"Anna", "Olga"}
    assert Customer.objects.get(first_name="Petr").company is None
    assert report.companies_created == 1
    assert Company.objects.count() == 2


def test_import_csv_puts_unknown_columns_into_custom_fields(tmp_path, db):
    # given columns that are no field of a customer
    path = write_csv(tmp_path, "first_name,Loyalty card,Favourite colour,empty\nIvan,GOLD-17,green,\n")

    # when imported
    records_import_csv(entity="customer", path=path)

    # then their values are kept in custom fields under the column names as typed
    assert Customer.objects.get().custom_fields == {"Loyalty card": "GOLD-17", "Favourite colour": "green"}


def test_import_csv_stores_several_phones_emails_and_messenger_handles(tmp_path, db):
    # given a row with two phones in national and international form, two emails and three handles
    path = write_csv(
        tmp_path,
        "first_name,phone,email,telegram,messenger\n"
        'Ivan,"8 (912) 345-67-89; +7 912 345 67 80; not a phone","ivan@example.com; IVAN@work.example",'
        '@ivan_p,"https://t.me/ivan_work; whatsapp:79123456789; 123456789"\n',
    )

    # when imported
    records_import_csv(entity="customer", path=path)

    # then each value is a contact, phones carry their E.164 form, an unparseable one is kept as typed
    customer = Customer.objects.get()
    assert list(customer.phones.values_list("number", "e164", "is_primary")) == [
        ("8 (912) 345-67-89", "+79123456789", True),
        ("+7 912 345 67 80", "+79123456780", False),
        ("not a phone", "", False),
    ]
    assert list(customer.emails.values_list("address", flat=True)) == ["ivan@example.com", "IVAN@work.example"]
    assert sorted(customer.messengers.values_list("channel", "username", "chat_id")) == [
        ("telegram", "", "123456789"),
        ("telegram", "ivan_p", ""),
        ("telegram", "ivan_work", ""),
        ("whatsapp", "", "79123456789"),
    ]


def test_import_csv_reads_tags_owner_and_a_default_owner(tmp_path, db):
    # given a manager, the importing user and an existing tag
    factories.UserFactory(username="olga")
    importer = factories.UserFactory(username="boss")
    Tag.objects.create(name="VIP")
    path = write_csv(tmp_path, "first_name,owner,tags\nIvan,olga,VIP; b2b\nAnna,,\n")

    # when imported with a default owner
    records_import_csv(entity="customer", path=path, owner=importer)

    # then the row's owner wins, the default fills the gap, and tags are linked (new ones created)
    ivan, anna = Customer.objects.get(first_name="Ivan"), Customer.objects.get(first_name="Anna")
    assert ivan.owner.username == "olga"
    assert anna.owner == importer
    assert sorted(ivan.tags.values_list("name", flat=True)) == ["VIP", "b2b"]
    assert Tag.objects.count() == 2


def test_import_csv_reads_utf8_with_bom_and_semicolons(tmp_path, db):
    # given an Excel-style export: UTF-8 with a byte order mark, ';' separated, decimal commas in the data
    path = write_csv(
        tmp_path,
        "\ufeffexternal_id;first_name;last_name;tags\r\nx-1;Иван;Петров;VIP;\r\n",
    )

    # when imported
    report = records_import_csv(entity="customer", path=path)

    # then the first column is the external ID (not "\ufeffexternal_id") and the Cyrillic text is intact
    assert report.skipped == []
    customer = Customer.objects.get()
    assert (customer.external_id, customer.first_name, customer.last_name) == ("x-1", "Иван", "Петров")
    assert customer.custom_fields == {}


def test_import_csv_refuses_a_file_that_is_not_utf8(tmp_path, db):
    # given a file saved in Windows-1251
    path = write_csv(tmp_path, "first_name\nИван\n", encoding="cp1251")

    # when imported, then the command stops with a clear error and writes nothing
    with pytest.raises(CommandError, match="not UTF-8 text \\(line 2\\)"):
        run_import("customer", path)
    assert not Customer.objects.exists()


def test_import_csv_unknown_entity_gives_a_command_error(tmp_path, db):
    path = write_csv(tmp_path, "first_name\nIvan\n")

    with pytest.raises(CommandError, match="Unknown entity 'person'"):
        run_import("person", path)


def test_import_csv_reports_a_repeated_external_id_instead_of_overwriting(tmp_path, db):
    # given a file where the same external ID appears twice
    path = write_csv(tmp_path, "external_id,first_name\nc-1,Ivan\nc-2,Anna\nc-1,Ivan the second\n")

    # when imported
    report = records_import_csv(entity="customer", path=path)

    # then the first row wins and the repeat is reported with the line of the first
    assert Customer.objects.get(external_id="c-1").first_name == "Ivan"
    assert [str(error) for error in report.skipped] == ["line 4: external_id: 'c-1' is already on line 2"]


def test_import_csv_sends_records_bulk_saved_after_each_batch(tmp_path, db, bulk_saved_log):
    # given five customers, two of them at a new company, imported two rows per batch
    path = write_csv(
        tmp_path,
        "first_name,company_name\nA,Acme LLC\nB,\nC,\nD,Acme LLC\nE,\n",
    )

    # when imported
    records_import_csv(entity="customer", path=path, batch_size=2)

    # then duplicate control heard of every customer, batch by batch, and of the company it created
    customer_calls = [pks for sender, model, pks in bulk_saved_log if model is Customer]
    assert [len(pks) for pks in customer_calls] == [2, 2, 1]
    assert sorted(pk for pks in customer_calls for pk in pks) == sorted(Customer.objects.values_list("pk", flat=True))
    assert all(sender is model for sender, model, _pks in bulk_saved_log)
    company_calls = [pks for _sender, model, pks in bulk_saved_log if model is Company]
    assert company_calls == [[Company.objects.get(name="Acme LLC").pk]]


def test_import_csv_signal_lists_updated_records_too(tmp_path, db, bulk_saved_log):
    # given a known customer
    existing = factories.CustomerFactory(external_id="k-1")
    path = write_csv(tmp_path, "external_id,first_name\nk-1,Renamed\nk-2,New\n")

    # when the file updates it and adds another
    records_import_csv(entity="customer", path=path)

    # then the signal names both, so the index re-reads the renamed one
    assert sorted(bulk_saved_log[0][2]) == sorted([existing.pk, Customer.objects.get(external_id="k-2").pk])


def test_import_csv_runs_a_constant_number_of_queries(tmp_path, db, django_assert_max_num_queries):
    # given 300 customers with phones, emails, companies and tags
    lines = ["external_id,first_name,phone,email,company_name,tags"]
    lines += [f"e{n},Name{n},+7 912 {n:03d}-00-00,p{n}@example.com,Company {n % 7},vip;b{n % 3}" for n in range(300)]
    path = write_csv(tmp_path, "\n".join(lines) + "\n")

    # when imported, then the queries stay around a hundred (SQLite splits inserts at 999 parameters; the
    # duplicate index adds its own per batch), not several per row, which would be well over a thousand
    with django_assert_max_num_queries(120):
        report = records_import_csv(entity="customer", path=path)
    assert report.created == 300
    assert Customer.objects.filter(phones__e164="+79121230000").count() == 1


def test_import_csv_quiet_mode_prints_only_the_bad_rows(tmp_path, db):
    path = write_csv(tmp_path, "first_name,birthday\nIvan,\nAnna,yesterday\n")

    out, err = run_import("customer", path, verbosity=0)

    assert out == ""
    assert "line 3: birthday: 'yesterday' is not a date" in err
    assert Customer.objects.count() == 1


def test_import_csv_refuses_a_row_with_more_values_than_columns(tmp_path, db):
    # given a row with a stray extra value (an unquoted comma), and one with empty trailing cells
    path = write_csv(tmp_path, "first_name,last_name\nIvan,Petrov,Jr\nAnna,Lee,,\n")

    report = records_import_csv(entity="customer", path=path)

    assert [str(error) for error in report.skipped] == ["line 2: 3 values but the header has 2 columns"]
    assert Customer.objects.get().first_name == "Anna"


def test_import_csv_places_leads_in_the_named_or_the_default_stage(tmp_path, lead_pipeline):
    # given leads with a named stage, no stage, and a stage the pipeline does not have
    path = write_csv(
        tmp_path,
        "title,stage,pipeline,phone,telegram\n"
        "Call back,Converted,,+7 912 345-67-89,\n"
        ",,,,@hidden_number\n"
        "Lost one,Negotiation,,,\n"
        "Elsewhere,,Partners,,\n",
    )

    # when imported
    report = records_import_csv(entity="lead", path=path)

    # then each valid lead sits in its pipeline and stage, and the bad rows say why
    converted = Lead.objects.get(title="Call back")
    assert (converted.pipeline, converted.stage.name) == (lead_pipeline, "Converted")
    telegram_lead = Lead.objects.get(title="@hidden_number")
    assert telegram_lead.stage.name == "Incoming"
    assert not telegram_lead.phones.exists()
    assert [str(error) for error in report.skipped] == [
        "line 4: stage: the pipeline 'Leads' has no stage 'Negotiation'",
        "line 5: pipeline: there is no lead pipeline 'Partners'",
    ]


def test_import_csv_leads_need_a_lead_pipeline(tmp_path, db):
    path = write_csv(tmp_path, "title\nA lead\n")

    with pytest.raises(CommandError, match="no lead pipeline"):
        run_import("lead", path)


def test_import_csv_orders_link_customers_and_compute_phone_e164(tmp_path, db):
    # given a customer with an external ID and one known by email
    by_id = factories.CustomerFactory(external_id="cust-1")
    by_email = factories.CustomerFactory()
    factories.EmailFactory(content_object=by_email, address="Olga@Example.com")
    path = write_csv(
        tmp_path,
        "number;customer_external_id;customer_email;status;total;email;phone\n"
        "A-1;cust-1;;shipped;1 234,50;;8 (912) 345-67-89\n"
        "A-2;;olga@example.com;Delivered;99.90;;\n"
        "A-3;;;new;10;OLGA@example.com;\n"
        "A-4;nobody;;new;10;;\n"
        "A-5;;;lost;-5;;\n",
    )

    # when imported
    report = records_import_csv(entity="order", path=path)

    # then orders find their customers by external ID or email, totals and phones are read
    first = Order.objects.get(number="A-1")
    assert (first.customer, first.status, first.total) == (by_id, "shipped", Decimal("1234.50"))
    assert first.phone_e164 == "+79123456789"
    assert Order.objects.get(number="A-2").customer == by_email
    assert Order.objects.get(number="A-2").status == "delivered"
    assert Order.objects.get(number="A-3").customer == by_email
    assert [str(error) for error in report.skipped] == [
        "line 5: customer_external_id: there is no customer 'nobody'",
        "line 6: status: 'lost' is not one of: new, processing, shipped, delivered, cancelled; total: '-5' is negative",
    ]


def test_import_csv_orders_update_by_number(tmp_path, db):
    # given an order that came from the shop without an external ID
    order = factories.OrderFactory(number="A-100", status="new")
    path = write_csv(tmp_path, "external_id,number,status\nshop-100,A-100,shipped\n")

    # when the shop's export is imported
    report = records_import_csv(entity="order", path=path)

    # then the order is updated and learns its external ID
    order.refresh_from_db()
    assert (report.created, report.updated) == (0, 1)
    assert (order.status, order.external_id) == ("shipped", "shop-100")


def test_import_csv_companies_need_a_name(tmp_path, db):
    path = write_csv(
        tmp_path, "name,tax_id,phone,email\nAcme LLC,7701234567,+7 495 123-45-67,info@acme.example\n,123,,\n"
    )

    report = records_import_csv(entity="company", path=path)

    company = Company.objects.get()
    assert (company.name, company.tax_id) == ("Acme LLC", "7701234567")
    assert company.phones.get().e164 == "+74951234567"
    assert [str(error) for error in report.skipped] == ["line 3: name: a new company needs a name"]


def test_import_csv_reads_an_open_binary_file(db):
    # given an uploaded file (a binary stream, as the admin receives it) with a BOM and Windows line ends
    upload = BytesIO("\ufefffirst_name;email\r\nИван;ivan@example.com\r\n".encode())

    # when imported from the stream
    report = records_import_csv(entity="customer", file=upload)

    # then it reads as a path would
    assert (report.created, report.skipped) == (1, [])
    assert Customer.objects.get().emails.get().address == "ivan@example.com"


def test_import_csv_replays_a_batch_the_database_refused_row_by_row(tmp_path, db):
    # given another writer that adds customer "race" while the batch is written (here: as soon as the batch's
    # new company is announced, after the import looked for existing external IDs)
    def concurrent_writer(sender, model, pks, **kwargs):
        if model is Company and not Customer.objects.filter(external_id="race").exists():
            Customer.objects.create(external_id="race", first_name="Concurrent")

    records_bulk_saved.connect(concurrent_writer, weak=False, dispatch_uid="test-concurrent-writer")
    path = write_csv(tmp_path, "external_id,first_name,company_name\nfirst,Ivan,NewCo\nrace,Anna,NewCo\n")
    try:
        # when the batch hits the unique external ID and is refused
        report = records_import_csv(entity="customer", path=path)
    finally:
        records_bulk_saved.disconnect(dispatch_uid="test-concurrent-writer")

    # then it was replayed row by row: nothing lost, nothing duplicated, the race row updated the other's record
    assert (report.created, report.updated, report.skipped) == (1, 1, [])
    assert Customer.objects.filter(external_id="race").count() == 1
    assert Customer.objects.get(external_id="race").first_name == "Anna"
    assert Customer.objects.get(external_id="first").company.name == "NewCo"
    assert Company.objects.filter(name="NewCo").count() == 1
