"""Every related row moves to the survivor in bulk; multi-valued things are united; the pinned note stays."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm import models
from dedup.merge import records_merge
from dedup.signals import records_bulk_saved
from tests import factories

pytestmark = pytest.mark.django_db

TIMELINE_FACTORIES = [
    factories.NoteFactory,
    factories.TaskFactory,
    factories.CallFactory,
    factories.EmailMessageFactory,
    factories.SmsMessageFactory,
    factories.ChatMessageFactory,
    factories.AttachmentFactory,
]

# A merge of customers touches ~14 relations with a select and an update each, plus locking, the survivor,
# the archive and the note: well under this, whatever the number of rows.
MERGE_MAX_QUERIES = 60


def give_everything(customer, *, rows_per_kind=1, tag_names=("vip",), phone="", email="", handle=""):
    """Give a customer one of every kind of related row (orders, deals, leads, timeline, contacts, tags)."""
    for _ in range(rows_per_kind):
        factories.OrderFactory(customer=customer)
        factories.DealFactory(customer=customer)
        factories.LeadFactory(customer=customer)
        for factory in TIMELINE_FACTORIES:
            factory(content_object=customer)
    for name in tag_names:
        customer.tags.add(factories.TagFactory(name=name))
    if phone:
        factories.PhoneFactory(content_object=customer, number=phone)
    if email:
        factories.EmailFactory(content_object=customer, address=email)
    if handle:
        factories.MessengerFactory(content_object=customer, username=handle)


def related_counts(customer) -> dict[str, int]:
    return {
        "orders": customer.orders.count(),
        "deals": customer.deals.count(),
        "leads": customer.leads.count(),
        "notes": customer.notes.count(),
        "tasks": customer.tasks.count(),
        "calls": customer.calls.count(),
        "email_messages": customer.email_messages.count(),
        "sms_messages": customer.sms_messages.count(),
        "chat_messages": customer.chat_messages.count(),
        "attachments": customer.attachments.count(),
        "phones": customer.phones.count(),
        "emails": customer.emails.count(),
        "messengers": customer.messengers.count(),
        "tags": customer.tags.count(),
    }


def test_records_merge_moves_every_kind_of_related_row_to_the_survivor(manager):
    # Given a survivor and two duplicates, each with orders, deals, leads, a whole timeline, contacts and tags
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    first = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    second = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    give_everything(survivor, tag_names=["vip"], phone="+79120000001", email="a@example.com", handle="ivan_a")
    give_everything(first, tag_names=["wholesale"], phone="+79120000002", email="b@example.com", handle="ivan_b")
    give_everything(second, tag_names=["newsletter"], phone="+79120000003", email="c@example.com", handle="ivan_c")

    # When the duplicates are merged into the survivor
    result = records_merge(survivor=survivor, absorbed=[first, second], user=manager)

    # Then the survivor's card lists all of it, and the archived records have none left
    assert related_counts(survivor) == {
        "orders": 3, "deals": 3, "leads": 3, "notes": 4, "tasks": 3, "calls": 3, "email_messages": 3,
        "sms_messages": 3, "chat_messages": 3, "attachments": 3, "phones": 3, "emails": 3, "messengers": 3,
        "tags": 3,
    }  # fmt: skip
    for absorbed in (first, second):
        assert set(related_counts(absorbed).values()) == {0}
    assert result.moved["orders"] == 2 and result.moved["tags"] == 2 and result.moved["notes"] == 2


def test_records_merge_archives_the_absorbed_records_pointing_at_the_survivor(manager):
    # Given two customers
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")

    # When they are merged
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the duplicate is archived, not deleted, and remembers where it went
    duplicate.refresh_from_db()
    assert duplicate.is_archived and duplicate.merged_into_id == survivor.pk
    survivor.refresh_from_db()
    assert not survivor.is_archived


def test_records_merge_writes_a_note_on_the_survivor_saying_what_was_merged(manager):
    # Given a survivor and two duplicates
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    first = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    second = factories.CustomerFactory(first_name="Vanya", last_name="Petrov")

    # When they are merged by a manager
    result = records_merge(survivor=survivor, absorbed=[first, second], user=manager)

    # Then the survivor's timeline says which records were merged, authored by the manager
    note = survivor.notes.get()
    assert note == result.note
    assert note.text == (
        f"Merged 2 records into this one: customer #{first.pk} Petrov Ivan, customer #{second.pk} Petrov Vanya."
    )
    assert note.author == manager


def test_records_merge_unites_phones_emails_and_handles_by_their_normalised_value(manager):
    # Given the same phone typed two ways, the same email in two cases, the same handle with and without "@"
    survivor = factories.CustomerFactory()
    factories.PhoneFactory(content_object=survivor, number="+7 912 345-67-89", is_primary=True)
    factories.EmailFactory(content_object=survivor, address="Ivan@Example.com", is_primary=True)
    duplicate = factories.CustomerFactory()
    factories.PhoneFactory(content_object=duplicate, number="8 (912) 345-67-89", is_primary=True)
    factories.PhoneFactory(content_object=duplicate, number="+7 912 000-00-01")
    factories.EmailFactory(content_object=duplicate, address="ivan@example.com")
    factories.MessengerFactory(content_object=survivor, username="ivan_p")
    factories.MessengerFactory(content_object=duplicate, username="Ivan_P")

    # When they are merged
    result = records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then each distinct value appears once, the survivor's form first, and only its own phone is primary
    assert list(survivor.phones.values_list("number", "is_primary")) == [
        ("+7 912 345-67-89", True),
        ("+7 912 000-00-01", False),
    ]
    assert list(survivor.emails.values_list("address", flat=True)) == ["Ivan@Example.com"]
    assert list(survivor.messengers.values_list("username", flat=True)) == ["ivan_p"]
    assert result.removed_duplicates == 3


def test_records_merge_unites_tags(manager):
    # Given tags shared and not shared between three customers
    survivor = factories.CustomerFactory()
    first = factories.CustomerFactory()
    second = factories.CustomerFactory()
    vip, wholesale, newsletter = (factories.TagFactory(name=n) for n in ("vip", "wholesale", "newsletter"))
    survivor.tags.add(vip)
    first.tags.add(vip, wholesale)
    second.tags.add(wholesale, newsletter)

    # When they are merged
    records_merge(survivor=survivor, absorbed=[first, second], user=manager)

    # Then the survivor has each tag once
    assert sorted(survivor.tags.values_list("name", flat=True)) == ["newsletter", "vip", "wholesale"]
    assert models.Customer.tags.through.objects.filter(customer=survivor).count() == 3


def test_records_merge_keeps_the_survivors_pinned_note_pinned(manager):
    # Given a pinned note on the priority customer and another on the duplicate
    survivor = factories.CustomerFactory()
    duplicate = factories.CustomerFactory()
    kept = factories.NoteFactory(content_object=survivor, text="Call after 6 pm", pinned=True)
    other = factories.NoteFactory(content_object=duplicate, text="Prefers email", pinned=True)

    # When they are merged
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the survivor's pinned note is the one it had; the other moved, unpinned
    assert list(survivor.notes.filter(pinned=True)) == [kept]
    other.refresh_from_db()
    assert other.object_id == survivor.pk and not other.pinned


def test_records_merge_of_companies_moves_their_customers_deals_and_leads(manager):
    # Given two companies, each with a customer, a deal and a lead
    survivor = factories.CompanyFactory(name="Acme LLC")
    duplicate = factories.CompanyFactory(name="ACME")
    customer = factories.CustomerFactory(company=duplicate)
    deal = factories.DealFactory(company=duplicate)
    lead = factories.LeadFactory(company=duplicate)

    # When the companies are merged
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the customer, deal and lead belong to the surviving company
    for row in (customer, deal, lead):
        row.refresh_from_db()
        assert row.company_id == survivor.pk


def test_records_merge_of_leads_moves_the_deals_made_from_them(manager):
    # Given a deal created from the duplicate lead
    survivor = factories.LeadFactory()
    duplicate = factories.LeadFactory()
    deal = factories.DealFactory(source_lead=duplicate)

    # When the leads are merged
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # Then the deal's source lead is the survivor
    deal.refresh_from_db()
    assert deal.source_lead_id == survivor.pk


def test_records_merge_tells_the_index_after_commit(manager, django_capture_on_commit_callbacks):
    # Given a listener on the bulk-saved signal (the match-key index listens to it)
    survivor = factories.CustomerFactory()
    duplicate = factories.CustomerFactory()
    received = []

    def listener(sender, model, pks, **kwargs):
        received.append((model, sorted(pks)))

    records_bulk_saved.connect(listener)
    try:
        # When a merge commits
        with django_capture_on_commit_callbacks(execute=True):
            records_merge(survivor=survivor, absorbed=[duplicate], user=manager)
    finally:
        records_bulk_saved.disconnect(listener)

    # Then the index is told to re-key the survivor and the archived record
    assert (models.Customer, sorted([survivor.pk, duplicate.pk])) in received


def bulk_rows(customers, rows_per_kind: int) -> None:
    """Give each customer rows_per_kind orders, deals, leads and rows of every timeline kind, in bulk."""
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(models.Customer)
    deal_stage = factories.StageFactory()
    lead_stage = factories.LeadFactory().stage
    timeline = {
        models.Note: {"text": "Called"},
        models.Task: {"title": "Call back"},
        models.Call: {"phone": "+79123456789"},
        models.EmailMessage: {"subject": "Hello"},
        models.SmsMessage: {"text": "Ready"},
        models.ChatMessage: {"text": "Hi"},
        models.Attachment: {"file": "attachments/contract.pdf"},
    }
    for model, values in timeline.items():
        model.objects.bulk_create(
            model(content_type=content_type, object_id=c.pk, **values) for c in customers for _ in range(rows_per_kind)
        )
    models.Order.objects.bulk_create(
        models.Order(customer=c, number=f"B-{c.pk}-{i}") for c in customers for i in range(rows_per_kind)
    )
    models.Deal.objects.bulk_create(
        models.Deal(customer=c, title="Deal", stage=deal_stage, pipeline=deal_stage.pipeline)
        for c in customers
        for _ in range(rows_per_kind)
    )
    models.Lead.objects.bulk_create(
        models.Lead(customer=c, title="Lead", stage=lead_stage, pipeline=lead_stage.pipeline)
        for c in customers
        for _ in range(rows_per_kind)
    )


def _customers_with_rows(rows_per_kind: int):
    survivor = factories.CustomerFactory()
    absorbed = factories.CustomerFactory.create_batch(3)
    give_everything(survivor, phone="+79120000001", email="s@example.com", handle="s")
    for index, record in enumerate(absorbed):
        give_everything(
            record,
            rows_per_kind=0,
            tag_names=[f"tag{index}", "shared"],
            phone=f"+7912000001{index}",
            email=f"a{index}@example.com",
            handle=f"a{index}",
        )
        factories.NoteFactory(content_object=record, pinned=True)
    bulk_rows(absorbed, rows_per_kind)
    return survivor, absorbed


@pytest.mark.parametrize("rows_per_kind", [10, 200])
def test_records_merge_query_count_does_not_grow_with_related_rows(
    manager, rows_per_kind, django_assert_max_num_queries
):
    # Given three duplicates carrying 10 or 200 rows of every timeline kind, orders, deals and leads each
    survivor, absorbed = _customers_with_rows(rows_per_kind)

    # When they are merged
    with django_assert_max_num_queries(MERGE_MAX_QUERIES):
        records_merge(survivor=survivor, absorbed=absorbed, user=manager)

    # Then the merge stayed under the same small number of queries, and moved every row
    assert survivor.notes.count() == 1 + 3 * (rows_per_kind + 1) + 1  # its own, the moved ones, the merge note
    assert survivor.orders.count() == 1 + 3 * rows_per_kind
    assert survivor.chat_messages.count() == 1 + 3 * rows_per_kind


def test_records_merge_query_count_is_the_same_for_10_and_200_rows(manager):
    # Given the same merge with 10 and with 200 rows per kind
    counts = []
    for rows_per_kind in (10, 200):
        survivor, absorbed = _customers_with_rows(rows_per_kind)

        # When each is run
        with CaptureQueriesContext(connection) as queries:
            records_merge(survivor=survivor, absorbed=absorbed, user=manager)
        counts.append(len(queries))

    # Then they take exactly as many queries
    assert counts[0] == counts[1]
