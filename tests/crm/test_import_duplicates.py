"""Imports with a duplicate policy (skip, update, create and flag), their per-row report and their undo."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from crm.importing import records_import_csv
from crm.importing.report import line_text
from crm.importing.undo import import_undo
from crm.models import Company, Customer, Email, ImportBatch, ImportRow, Phone, Tag
from dedup.models import DuplicatePair
from tests import factories


def write_csv(tmp_path, text, *, name="people.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args):
    out = StringIO()
    call_command("import_csv", *map(str, args), "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def ivan(db):
    """A customer already in the CRM: Ivan Petrov, his phone, an empty position."""
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", position="", source="")
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89", is_primary=True)
    customer.tags.add(Tag.objects.create(name="old"))
    return Customer.objects.get(pk=customer.pk)


FILE = (
    "first_name,last_name,phone,email,position,tags\n"
    "Ivan,Petrov,8 (912) 345-67-89,ivan@example.com,Director,vip\n"   # line 2: Ivan by his phone
    "Anna,Lee,+1 415 555 0100,anna@example.com,,\n"                  # line 3: new
    "Anna,Lee,,ANNA@example.com,Buyer,\n"                            # line 4: line 3 again (same email)
)


def snapshot():
    """Every customer, phone, email and tag link as plain values, to compare before and after."""
    return (
        sorted(Customer.objects.values_list("pk", "first_name", "last_name", "position", "source", "custom_fields")),
        sorted(Phone.objects.values_list("pk", "object_id", "number", "is_primary")),
        sorted(Email.objects.values_list("pk", "object_id", "address", "is_primary")),
        sorted(Customer.tags.through.objects.values_list("customer_id", "tag_id")),
        sorted(Company.objects.values_list("pk", "name")),
    )


def test_import_csv_skip_policy_leaves_duplicates_out_and_says_why(tmp_path, ivan):
    path = write_csv(tmp_path, FILE)

    out = run("customer", path, "--duplicates", "skip")

    # then Ivan is untouched, Anna is created once, and both left-out rows say which record they met and why
    ivan.refresh_from_db()
    assert ivan.position == "" and Customer.objects.count() == 2
    anna = Customer.objects.get(first_name="Anna")
    assert f"line 2: skipped, a duplicate of customer #{ivan.pk}: same phone" in out
    assert f"line 4: skipped, a duplicate of customer #{anna.pk} (line 3 of this file): same email" in out
    assert "not imported as duplicates: 2" in out


def test_import_csv_update_policy_fills_empty_fields_and_unites_contacts(tmp_path, ivan):
    ivan.source = "fair"
    ivan.save()
    path = write_csv(tmp_path, FILE.replace("Director,vip", "Director,vip").replace(",ivan@", ",ivan@"))

    out = run("customer", path, "--duplicates", "update")

    ivan.refresh_from_db()
    # then the empty position is filled, the phone is not doubled, the email and the tag are added
    assert ivan.position == "Director"
    assert ivan.source == "fair"
    assert list(ivan.phones.values_list("e164", flat=True)) == ["+79123456789"]
    assert list(ivan.emails.values_list("address", flat=True)) == ["ivan@example.com"]
    assert set(ivan.tags.values_list("name", flat=True)) == {"old", "vip"}
    # and line 4 fills Anna's empty position from the same file, keeping her first email only once
    anna = Customer.objects.get(first_name="Anna")
    assert Customer.objects.count() == 2
    assert anna.position == "Buyer"
    assert anna.emails.count() == 1
    assert f"line 2: updated customer #{ivan.pk}: same phone" in out


def test_import_csv_update_policy_keeps_what_the_record_has(tmp_path, ivan):
    ivan.position = "Owner"
    ivan.save()
    path = write_csv(tmp_path, "first_name,last_name,phone,position\nJohn,Smith,+79123456789,Director\n")

    run("customer", path, "--duplicates", "update")

    ivan.refresh_from_db()
    assert (ivan.first_name, ivan.last_name, ivan.position) == ("Ivan", "Petrov", "Owner")


def test_import_csv_create_policy_creates_and_flags_the_pair(tmp_path, ivan, django_capture_on_commit_callbacks):
    path = write_csv(tmp_path, FILE)

    with django_capture_on_commit_callbacks(execute=True):
        out = run("customer", path)  # create is the default

    assert Customer.objects.count() == 4
    new_ivan = Customer.objects.exclude(pk=ivan.pk).get(first_name="Ivan")
    second_anna = Customer.objects.filter(first_name="Anna").order_by("pk").last()
    assert f"line 2: created customer #{new_ivan.pk}, flagged as a possible duplicate of customer #{ivan.pk}" in out
    assert "(line 3 of this file)" in out
    # the pairs are stored duplicates: the card's badge, the list's count and the filter show them
    pairs = set(DuplicatePair.objects.filter(entity="customer").values_list("record_id", "other_id"))
    assert (ivan.pk, new_ivan.pk) in pairs and (new_ivan.pk, ivan.pk) in pairs
    assert any(second_anna.pk in pair for pair in pairs)
    batch = ImportBatch.objects.get()
    assert (batch.created, batch.flagged, batch.updated, batch.skipped) == (3, 2, 0, 0)


def test_import_report_is_in_the_readers_language(tmp_path, ivan):
    path = write_csv(tmp_path, FILE)
    records_import_csv(entity="customer", path=path, policy="skip")
    line = ImportRow.objects.get(line=2)

    with translation.override("ru"):
        text = line_text(Customer, line)

    assert "строка 2" in text and "пропущена" in text and "«телефон»" in text


@pytest.mark.parametrize("policy", ["skip", "update", "create"])
def test_import_csv_undo_restores_every_row_exactly(tmp_path, ivan, policy):
    factories.CustomerFactory(first_name="Other", last_name="Person")
    before = snapshot()
    path = write_csv(tmp_path, FILE + "Olga,Smirnova,+7 903 000-00-01,,Buyer,b2b\n")
    path2 = write_csv(tmp_path, "first_name,company_name\nPetr,Acme LLC\n", name="more.csv")
    run("customer", path, "--duplicates", policy)
    run("customer", path2, "--duplicates", policy)
    assert snapshot() != before

    for batch in ImportBatch.objects.order_by("-pk"):
        out = run("--undo", batch.pk)
        assert f"Import #{batch.pk} undone" in out

    assert snapshot() == before
    assert ImportBatch.objects.filter(undone_at__isnull=False).count() == 2


def test_import_undo_refuses_when_a_record_was_edited_since(tmp_path, ivan):
    path = write_csv(tmp_path, FILE)
    run("customer", path, "--duplicates", "update")
    ivan.refresh_from_db()
    ivan.position = "CEO"
    ivan.save()
    batch = ImportBatch.objects.get()

    with pytest.raises(CommandError, match="changed after the import"):
        run("--undo", batch.pk)
    ivan.refresh_from_db()
    assert ivan.position == "CEO" and Customer.objects.count() == 2


def test_import_undo_refuses_when_a_created_record_was_merged_since(tmp_path, ivan):
    path = write_csv(tmp_path, FILE)
    run("customer", path)
    created = Customer.objects.exclude(pk=ivan.pk).get(first_name="Ivan")
    Customer.objects.filter(pk=created.pk).update(is_archived=True, merged_into=ivan)
    batch = ImportBatch.objects.get()

    with pytest.raises(CommandError, match="merged into another record"):
        run("--undo", batch.pk)
    assert Customer.objects.count() == 4


def test_import_undo_twice_is_refused(tmp_path, ivan):
    run("customer", write_csv(tmp_path, FILE))
    batch = ImportBatch.objects.get()
    run("--undo", batch.pk)

    with pytest.raises(CommandError, match="undone already"):
        run("--undo", batch.pk)
    with pytest.raises(CommandError, match="no import #999"):
        run("--undo", 999)


def test_import_csv_unknown_policy_is_a_clear_error(tmp_path, db):
    path = write_csv(tmp_path, "first_name\nIvan\n")

    with pytest.raises(CommandError, match="invalid choice"):
        run("customer", path, "--duplicates", "merge")
    with pytest.raises(Exception, match="Unknown duplicate policy"):
        records_import_csv(entity="customer", path=path, policy="merge")


def test_import_csv_hostile_rows_are_errors_with_any_policy(tmp_path, ivan):
    # given a 10 kB name, a NUL, a phone that is no phone and a custom JSON bomb, next to a duplicate
    path = write_csv(
        tmp_path,
        "first_name,phone,custom_fields\n"
        + "x" * 10_000 + ",+7 912 345-67-89,\n"
        + "Ivan\x00,abc,\n"
        + "Anna,abc,{}\n".replace("{}", '"' + "[" * 50 + "]" * 50 + '"')
        + "Olga,8 (912) 345-67-89,\n",
    )

    out = run("customer", path, "--duplicates", "update")

    assert "line 2: first_name: longer than 100 characters" in out
    assert "line 3: the row contains a NUL character" in out
    assert "line 4: custom_fields" in out
    assert f"line 5: updated customer #{ivan.pk}" in out
    assert set(ImportRow.objects.values_list("line", "action")) == {
        (2, "error"), (3, "error"), (4, "error"), (5, "updated"),
    }


def test_import_undo_service_checks_permissions(tmp_path, ivan, django_user_model):
    run("customer", write_csv(tmp_path, FILE))
    batch = ImportBatch.objects.get()
    clerk = django_user_model.objects.create_user("clerk", password="x")

    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        import_undo(batch=batch, user=clerk)
    assert Customer.objects.count() == 4
