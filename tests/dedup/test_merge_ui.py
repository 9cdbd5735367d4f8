"""The compare table and the duplicate list behind the badge (dedup/admin/compare.py, dedup/admin/merge_forms.py)."""
from decimal import Decimal

import pytest
from django.utils.dateparse import parse_datetime

from crm.models import Customer, Order
from dedup.admin.compare import MergeSelectionError, compare_table, duplicate_rows
from dedup.admin.merge_forms import DuplicateSelectionForm, MergeForm
from dedup.records import record_admin_url, record_label
from tests import factories

pytestmark = pytest.mark.django_db


def _row(table, name):
    return next(row for row in table.rows if row.name == name)


def _multi(table, name):
    return next(row for row in table.multi_rows if row.name == name)


def _related(table, name):
    return next(row for row in table.related_rows if row.name == name)


def test_compare_table_keeps_priority_value_by_default():
    # Given two customers with different first names
    priority = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    other = factories.CustomerFactory(first_name="John", last_name="Petrov")

    # When the table is built with the second one as priority
    table = compare_table(Customer, [priority.pk, other.pk], priority_pk=other.pk)

    # Then the priority record is the first column and its first name is chosen
    assert [record.pk for record in table.records] == [other.pk, priority.pk]
    assert _row(table, "first_name").chosen_pk == other.pk
    assert [cell.display for cell in _row(table, "first_name").cells] == ["John", "Ivan"]


def test_compare_table_fills_empty_priority_field_from_first_non_empty_other():
    # Given an order without email as priority, then an order without email, then one with it (seed 004)
    priority = factories.OrderFactory(email="")
    empty = factories.OrderFactory(email="")
    with_email = factories.OrderFactory(email="ivan@example.com")
    later = factories.OrderFactory(email="other@example.com")

    # When the table is built
    table = compare_table(Order, [priority.pk, empty.pk, with_email.pk, later.pk])

    # Then the first non-empty email of the others is chosen, while filled fields keep the priority's value
    assert _row(table, "email").chosen_pk == with_email.pk
    assert _row(table, "number").chosen_pk == priority.pk
    summary = table.summary()
    assert "Email" in summary.taken_from_others


def test_compare_table_field_empty_everywhere_has_no_choice():
    # Given two customers without a position
    first, second = factories.CustomerFactory(position=""), factories.CustomerFactory(position="")

    # When the table is built
    table = compare_table(Customer, [first.pk, second.pk])

    # Then the row is shown with dashes and nothing to choose
    row = _row(table, "position")
    assert row.chosen_pk is None and not row.choosable
    assert [cell.display for cell in row.cells] == ["\u2014", "\u2014"]


def test_compare_table_unites_phones_emails_messengers_and_tags():
    # Given two customers sharing one phone written two ways, each with its own email, handle and tag
    first, second = factories.CustomerFactory(), factories.CustomerFactory()
    factories.PhoneFactory(content_object=first, number="+7 912 345-67-89")
    factories.PhoneFactory(content_object=second, number="8 (912) 345-67-89")
    factories.PhoneFactory(content_object=second, number="+7 903 111-22-33")
    factories.EmailFactory(content_object=first, address="ivan@example.com")
    factories.EmailFactory(content_object=second, address="IVAN@example.com")
    factories.EmailFactory(content_object=second, address="petrov@example.com")
    factories.MessengerFactory(content_object=second, username="ivanp")
    first.tags.add(factories.TagFactory(name="vip"))
    second.tags.add(factories.TagFactory(name="vip"), factories.TagFactory(name="wholesale"))

    # When the table is built
    table = compare_table(Customer, [first.pk, second.pk])

    # Then each multi-valued field lists each record's items and their union without repeats
    phones = _multi(table, "phones")
    assert phones.per_record == [["+7 912 345-67-89"], ["8 (912) 345-67-89", "+7 903 111-22-33"]]
    assert phones.united == ["+7 912 345-67-89", "+7 903 111-22-33"]
    assert _multi(table, "emails").united == ["ivan@example.com", "petrov@example.com"]
    assert _multi(table, "messengers").united == ["Telegram @ivanp"]
    assert sorted(_multi(table, "tags").united) == ["vip", "wholesale"]
    # and no single-value row offers a choice for them
    assert not {"phones", "emails", "messengers", "tags"} & {row.name for row in table.rows}


def test_compare_table_counts_related_rows_and_summarises():
    # Given a priority customer with a note and two others with notes and an order
    survivor = factories.CustomerFactory()
    second, third = factories.CustomerFactory(), factories.CustomerFactory()
    factories.NoteFactory(content_object=survivor)
    factories.NoteFactory.create_batch(3, content_object=second)
    factories.NoteFactory(content_object=third)
    factories.OrderFactory(customer=third)

    # When the table is built
    table = compare_table(Customer, [survivor.pk, second.pk, third.pk])

    # Then each related row has a count per record and the rows that move
    notes = _related(table, "notes")
    assert notes.counts == [1, 3, 1] and notes.moving == 4
    assert _related(table, "orders").counts == [0, 0, 1]
    # and the summary says what will happen
    assert table.summary().headline == (
        f"{record_label(survivor)} stays; 2 records will be archived; 1 order, 4 notes move"
    )


def test_compare_table_takes_any_number_of_records():
    # Given seven customers
    customers = factories.CustomerFactory.create_batch(7)

    # When they are all compared
    table = compare_table(Customer, [c.pk for c in customers], priority_pk=customers[3].pk)

    # Then there is a column per record and six will be archived
    assert len(table.records) == 7 and len(_row(table, "first_name").cells) == 7
    assert "6 records will be archived" in table.summary().headline


@pytest.mark.parametrize("case", ["one", "missing", "archived", "priority_outside"])
def test_compare_table_refuses_bad_selection(case):
    # Given two customers, one of them possibly archived
    first, second = factories.CustomerFactory(), factories.CustomerFactory()
    pks, priority = [first.pk, second.pk], None
    if case == "one":
        pks = [first.pk, first.pk]
    elif case == "missing":
        pks = [first.pk, 999_999]
    elif case == "archived":
        Customer.objects.filter(pk=second.pk).update(is_archived=True, merged_into=first)
    else:
        priority = 999_999

    # When the table is built
    # Then a clear error says what is wrong
    with pytest.raises(MergeSelectionError) as error:
        compare_table(Customer, pks, priority_pk=priority)
    assert str(error.value)


def test_compare_table_queries_do_not_grow_with_records(django_assert_max_num_queries):
    # Given seven customers with phones, emails, tags and notes
    customers = factories.CustomerFactory.create_batch(7, company=factories.CompanyFactory())
    for customer in customers:
        factories.PhoneFactory(content_object=customer)
        factories.EmailFactory(content_object=customer)
        factories.NoteFactory(content_object=customer)
        customer.tags.add(factories.TagFactory(name="vip"))
    two = [customers[0].pk, customers[1].pk]
    seven = [customer.pk for customer in customers]
    compare_table(Customer, two)  # warm the content type cache

    # When tables of two and of seven records are built
    with django_assert_max_num_queries(20) as two_queries:
        compare_table(Customer, two)
    with django_assert_max_num_queries(len(two_queries.captured_queries)):
        table = compare_table(Customer, seven)

    # Then seven records cost no more queries than two
    assert table.records[0].company.name  # foreign keys came with the records


def test_compare_table_expected_versions_are_updated_at():
    # Given two customers
    first, second = factories.CustomerFactory(), factories.CustomerFactory()

    # When the table is built
    table = compare_table(Customer, [first.pk, second.pk])

    # Then the versions the screen saw are the records' updated_at
    assert parse_datetime(table.expected[first.pk]) == first.updated_at


def test_merge_form_returns_chosen_values_and_versions():
    # Given a compare table of two orders
    priority = factories.OrderFactory(email="", total=Decimal("10.00"))
    other = factories.OrderFactory(email="a@example.com", total=Decimal("20.00"))
    table = compare_table(Order, [priority.pk, other.pk])

    # When the manager keeps the defaults but picks the other order's total
    data = {"priority": priority.pk, "records": [priority.pk, other.pk], "choice_total": other.pk}
    for name, field in MergeForm(table=table).fields.items():
        if name.startswith(("choice_", "expected_")):
            data.setdefault(name, field.initial)
    form = MergeForm(data, table=table)

    # Then the form is valid and returns each choice and each version seen
    assert form.is_valid(), form.errors
    chosen = form.chosen()
    assert chosen["total"] == other.pk and chosen["email"] == other.pk and chosen["number"] == priority.pk
    assert form.expected_versions[other.pk] == other.updated_at
    assert "Total" in table.summary(chosen).taken_from_others


def test_merge_form_rejects_value_from_unknown_record():
    # Given a compare table of two customers
    first, second = factories.CustomerFactory(), factories.CustomerFactory()
    table = compare_table(Customer, [first.pk, second.pk])

    # When the posted choice points at a record outside the table
    form = MergeForm(
        {"priority": first.pk, "records": [first.pk, second.pk], "choice_first_name": 999_999}, table=table
    )

    # Then the form is invalid on that field
    assert not form.is_valid()
    assert "choice_first_name" in form.errors


def test_duplicate_selection_form_requires_ticked_priority():
    # Given the list of a current record with two candidates
    form = DuplicateSelectionForm(
        {"priority": 3, "include": [2], "shown": [2, 3], "action": "compare"}, current_pk=1, candidate_pks=[2, 3]
    )

    # When the priority is an unticked record
    # Then the form says the priority must be ticked
    assert not form.is_valid()
    assert "The priority record must be ticked." in form.errors["priority"]


def test_duplicate_selection_form_splits_ticked_and_unticked():
    # Given the list of record 1 with candidates 2, 3 and 4, where 3 is unticked and 2 chosen as priority
    form = DuplicateSelectionForm(
        {"priority": 2, "include": [2, 4], "shown": [2, 3, 4], "action": "compare"},
        current_pk=1,
        candidate_pks=[2, 3, 4],
    )

    # When it is validated
    assert form.is_valid(), form.errors

    # Then the merge is priority first, then current and ticked; the unticked one is set aside
    assert form.merged_pks == [2, 1, 4]
    assert form.unticked_pks == [3]


def test_record_label_names_model_id_and_the_record():
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    assert record_label(customer) == f"Customer #{customer.pk} Petrov Ivan"


def test_record_admin_url_is_the_change_page_or_empty_without_admin():
    from django.contrib.auth.models import Permission

    customer = factories.CustomerFactory()
    assert record_admin_url(type(customer), customer.pk) == f"/admin/crm/customer/{customer.pk}/change/"
    assert record_admin_url(Permission, 1) == ""


def _form_data(table, **overrides):
    """The data the compare screen posts with its defaults, plus overrides."""
    data = {"priority": table.priority.pk, "records": [record.pk for record in table.records]}
    for name, field in MergeForm(table=table).fields.items():
        if name.startswith(("choice_", "expected_")):
            data[name] = field.initial
    data.update(overrides)
    return data


def test_compare_table_splits_custom_fields_by_key():
    # Given a priority customer with a colour and another with an empty colour and a size
    priority = factories.CustomerFactory(custom_fields={"colour": "red"})
    other = factories.CustomerFactory(custom_fields={"colour": "", "size": "L"})

    # When the table is built
    table = compare_table(Customer, [priority.pk, other.pk])

    # Then each key is its own row: the priority keeps its colour, the size comes from the other
    assert _row(table, "custom_fields.colour").chosen_pk == priority.pk
    assert _row(table, "custom_fields.size").chosen_pk == other.pk
    assert _row(table, "custom_fields.size").label == "Custom fields: size"


def test_compare_table_orders_rows_like_the_card():
    # Given two customers
    first, second = factories.CustomerFactory(), factories.CustomerFactory()

    # When the table is built with the card's field order
    table = compare_table(Customer, [first.pk, second.pk], field_order=["last_name", "first_name", "tags"])

    # Then those rows come first, the others after in model order
    names = [row.name for row in table.rows]
    assert names[:2] == ["last_name", "first_name"]
    model_order = [f.name for f in Customer._meta.concrete_fields if f.name in names[2:]]
    assert names[2:] == model_order


def test_compare_table_shows_booleans_and_related_records_as_text():
    # Given two customers, one excluded from repeat sales and in a company
    company = factories.CompanyFactory(name="Acme LLC")
    first = factories.CustomerFactory(exclude_from_repeat_sales=True, company=company)
    second = factories.CustomerFactory()

    # When the table is built
    table = compare_table(Customer, [first.pk, second.pk])

    # Then the values read as words
    assert [c.display for c in _row(table, "exclude_from_repeat_sales").cells] == ["Yes", "No"]
    assert [c.display for c in _row(table, "company").cells] == ["Acme LLC", "\u2014"]


def test_compare_table_locks_unique_order_number():
    # Given two orders
    first, second = factories.OrderFactory(), factories.OrderFactory()

    # When they are compared
    table = compare_table(Order, [first.pk, second.pk])

    # Then the number stays the priority's: it is the only selectable value
    row = _row(table, "number")
    assert row.locked and row.selectable_pks == [first.pk] and row.chosen_pk == first.pk
    assert not _row(table, "total").locked


def test_merge_form_choices_are_accepted_by_merge_engine():
    # Given a compare table of two customers with custom fields and positions
    from dedup.merge import records_merge

    priority = factories.CustomerFactory(position="", custom_fields={"colour": "red"})
    other = factories.CustomerFactory(position="Buyer", custom_fields={"colour": "blue", "size": "L"})
    table = compare_table(Customer, [priority.pk, other.pk])

    # When the manager takes the other's colour and the form's choices go to the merge engine
    form = MergeForm(_form_data(table, **{"choice_custom_fields.colour": other.pk}), table=table)
    assert form.is_valid(), form.errors
    records_merge(survivor=priority, absorbed=[other], choices=form.chosen(), expected=form.expected_raw())

    # Then the survivor has exactly what the screen showed
    priority.refresh_from_db()
    assert priority.position == "Buyer"
    assert priority.custom_fields == {"colour": "blue", "size": "L"}


def test_duplicate_rows_lists_current_first_with_reasons_and_counts():
    # Given a customer and a duplicate sharing a phone, with two notes
    from dedup.engine.finder import duplicates_of

    current = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    other = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    factories.PhoneFactory(content_object=current, number="+7 912 345-67-89")
    factories.PhoneFactory(content_object=other, number="8 912 345 67 89")
    factories.NoteFactory.create_batch(2, content_object=other)

    # When the list behind the badge is read
    rows = duplicate_rows(current, duplicates_of(current))

    # Then the current record is first and marked, the other says why it matched and what it carries
    assert [row.pk for row in rows] == [current.pk, other.pk]
    assert rows[0].is_current and not rows[1].is_current
    assert any("phone" in reason for reason in rows[1].reasons)
    assert [(r.name, r.count) for r in rows[1].related] == [("notes", 2)]
    assert rows[1].key_fields[0].label == "Full name" and rows[1].key_fields[0].value == "Petrov Ivan"
