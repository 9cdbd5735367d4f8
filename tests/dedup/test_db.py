"""dedup.db bulk_insert: multi-row INSERTs that return the new keys, with defaults and prepared values."""
import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.models import Customer, Lead, Order, Phone, Tag
from dedup import db as db_helpers
from dedup.db import COPY_MIN_ROWS, bulk_insert, bulk_insert_instances, insert_rows
from dedup.models.scan import DuplicateGroup, ScanRun
from tests import factories


def test_bulk_insert_returns_keys_in_order_and_fills_defaults(db, django_assert_max_num_queries):
    # given 2,500 rows that name only some columns (more than one statement on any database)
    rows = [{"first_name": f"N{n}", "birthday": datetime.date(1990, 1, 1 + n % 28)} for n in range(2500)]

    # when inserted
    with django_assert_max_num_queries(60):
        pks = bulk_insert(Customer, rows)

    # then each key belongs to its row, and the other columns have their defaults
    assert len(pks) == 2500
    first, last = Customer.objects.get(pk=pks[0]), Customer.objects.get(pk=pks[-1])
    assert (first.first_name, last.first_name) == ("N0", "N2499")
    assert last.birthday == datetime.date(1990, 1, 1 + 2499 % 28)
    assert (first.custom_fields, first.is_archived, first.exclude_from_repeat_sales) == ({}, False, False)
    assert first.created_at is not None and first.created_at == first.updated_at


def test_bulk_insert_prepares_json_decimals_and_foreign_keys(db):
    # given a customer, an order row with JSON, a decimal and a foreign key
    customer = factories.CustomerFactory()
    [pk] = bulk_insert(Order, [{
        "number": "B-1", "customer_id": customer.pk, "total": Decimal("12.30"),
        "custom_fields": {"källa": "web", "n": [1, 2]},
    }])

    # then they read back as written
    order = Order.objects.get(pk=pk)
    assert (order.customer, order.total) == (customer, Decimal("12.30"))
    assert order.custom_fields == {"källa": "web", "n": [1, 2]}


def test_bulk_insert_ignore_conflicts_skips_existing_rows(db):
    # given a customer with a tag
    customer = factories.CustomerFactory()
    tag = Tag.objects.create(name="vip")
    customer.tags.add(tag)
    through = Customer.tags.through

    # when the same link and a new one are inserted ignoring conflicts
    other = Tag.objects.create(name="b2b")
    links = [{"customer_id": customer.pk, "tag_id": tag.pk}, {"customer_id": customer.pk, "tag_id": other.pk}]
    bulk_insert(through, links, ignore_conflicts=True)

    # then the customer has both tags once
    assert sorted(customer.tags.values_list("name", flat=True)) == ["b2b", "vip"]


def test_bulk_insert_instances_sets_keys_and_follows_related_objects_saved_since(db):
    # given a lead whose stage and pipeline were saved after they were assigned
    stage = factories.StageFactory.build(pipeline=factories.PipelineFactory(kind="lead", name="L"), name="New")
    lead = Lead(title="Hello", pipeline=stage.pipeline, stage=stage)
    stage.save()

    # when inserted
    bulk_insert_instances(Lead, [lead])

    # then it has its key and points at the stage saved after the assignment
    assert Lead.objects.get(pk=lead.pk).stage == stage
    assert lead._state.adding is False


def test_bulk_insert_of_nothing_runs_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert bulk_insert(Phone, []) == []


def test_bulk_insert_outside_a_transaction_still_returns_the_right_keys(transactional_db):
    # given no surrounding transaction (autocommit, as a management command runs)
    rows = [{"number": f"T-{n}", "total": Decimal(n)} for n in range(300)]

    # when inserted
    pks = bulk_insert(Order, rows)

    # then every key is the key of its own row
    numbers = dict(Order.objects.filter(pk__in=pks).values_list("pk", "number"))
    assert [numbers[pk] for pk in pks] == [f"T-{n}" for n in range(300)]


@pytest.mark.parametrize("count", [3, COPY_MIN_ROWS + 5])  # a VALUES list, and COPY on PostgreSQL
def test_insert_rows_prepares_json_and_dates_and_fills_defaults(db, count):
    # given plain rows of a model with a JSON column, a date, foreign keys and columns left to their defaults
    run = ScanRun.objects.create(entities=["customer"])
    moment = timezone.now().replace(microsecond=0)
    rows = [
        ("customer", f"sig-{n}", 2, [{"id": "reason.phone", "n": n}], moment, run.pk, None) for n in range(count)
    ]

    # when inserted without instances
    sent = insert_rows(
        DuplicateGroup, ["entity", "signature", "size", "reasons", "newest_activity", "first_run_id", "last_run"], rows
    )

    # then every row reads back as the ORM wrote it: JSON as JSON (not a quoted string), the date, the defaults
    assert sent == count
    groups = list(DuplicateGroup.objects.order_by("pk"))
    assert [group.signature for group in groups] == [f"sig-{n}" for n in range(count)]
    assert groups[-1].reasons == [{"id": "reason.phone", "n": count - 1}]
    assert groups[0].newest_activity == moment and groups[0].first_run_id == run.pk and groups[0].last_run_id is None
    assert groups[0].status == DuplicateGroup.Status.OPEN and groups[0].resolution == ""
    assert groups[0].created_at is not None and groups[0].updated_at is not None


def test_instances_where_converts_values_as_the_orm_does(db):
    # given orders with dates and decimals
    orders = [factories.OrderFactory(total=Decimal("12.50")) for _ in range(3)]

    # when two are read with plain SQL, with only some fields
    found = db_helpers.instances_where(
        Order, key=Order._meta.pk, keys=[orders[0].pk, orders[2].pk], names=["total", "created_at"]
    )

    # then they are those instances with the values the ORM reads (a Decimal, an aware datetime)
    by_pk = {order.pk: order for order in found}
    assert set(by_pk) == {orders[0].pk, orders[2].pk}
    assert by_pk[orders[0].pk].total == Decimal("12.50")
    assert by_pk[orders[0].pk].created_at == Order.objects.get(pk=orders[0].pk).created_at


def test_batches_reads_lazily_and_keeps_the_order():
    # given a generator that must not be read ahead
    read = []

    def numbers():
        for number in range(7):
            read.append(number)
            yield number

    # when batched by three
    batched = db_helpers.batches(numbers(), 3)

    # then the first batch reads only its own items, and all come in order
    assert next(batched) == [0, 1, 2] and read == [0, 1, 2]
    assert list(batched) == [[3, 4, 5], [6]]


def test_instances_together_reads_several_tables_in_one_query_as_the_orm_does(db, django_assert_num_queries):
    # given a customer with a company, a birthday, custom fields and two phones, and another customer's phone
    from crm.models import Company

    company = factories.CompanyFactory(name="Acme LLC")
    customer = factories.CustomerFactory(
        first_name="Ivan", company=company, birthday=datetime.date(1990, 5, 17), custom_fields={"colour": "red"}
    )
    phones = [factories.PhoneFactory(content_object=customer, number=n) for n in ("+79123456789", "8 912 000-00-01")]
    factories.PhoneFactory(content_object=factories.CustomerFactory(), number="+14155550100")
    owner_type = phones[0].content_type_id

    # when the customer, its company (through the customer's foreign key) and its phones are read together
    parts = [
        db_helpers.Rows(Customer, key=Customer._meta.pk, keys=[customer.pk],
                        names=["first_name", "birthday", "custom_fields", "company"]),
        db_helpers.Rows(Company, key=Company._meta.pk, keys=[customer.pk], names=["name"],
                        via=Customer._meta.get_field("company")),
        db_helpers.Rows(Phone, key=Phone._meta.get_field("object_id"), keys=[customer.pk], names=["number", "e164"],
                        equal=[(Phone._meta.get_field("content_type"), owner_type)]),
    ]
    with django_assert_num_queries(1):
        [read_customer], [read_company], read_phones = db_helpers.instances_together(parts)

    # then each table's rows come back with the values and types the ORM gives, the other fields deferred
    assert (read_customer.pk, read_customer.first_name, read_customer.birthday, read_customer.custom_fields,
            read_customer.company_id) == (
        customer.pk, "Ivan", datetime.date(1990, 5, 17), {"colour": "red"}, company.pk
    )
    assert "last_name" in read_customer.get_deferred_fields()
    assert (read_company.pk, read_company.name) == (company.pk, "Acme LLC")
    assert sorted((p.pk, p.number, p.e164) for p in read_phones) == sorted((p.pk, p.number, p.e164) for p in phones)
    # and a part alone reads as instances_where does
    assert [c.pk for c in db_helpers.instances_together(parts[:1])[0]] == [customer.pk]
