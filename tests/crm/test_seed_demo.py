"""The demo base: seed_demo and the demo_seed service, with its planted duplicates and their ground truth."""
from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from crm.models import (
    Call,
    ChatMessage,
    Company,
    Customer,
    Deal,
    EmailMessage,
    Lead,
    Note,
    Order,
    Pipeline,
    SmsMessage,
    Task,
)
from crm.services.demo import demo_seed
from dedup.signals import records_bulk_saved

CUSTOMERS = 150


@pytest.fixture
def seeded(db):
    return demo_seed(customers=CUSTOMERS, seed=11)


def people():
    """Return {demo_person: [customers]} with phones and emails prefetched."""
    groups = defaultdict(list)
    for customer in Customer.objects.prefetch_related("phones", "emails").order_by("pk"):
        groups[customer.custom_fields["demo_person"]].append(customer)
    return groups


def test_seed_demo_creates_the_requested_customers_and_a_full_base(seeded):
    # given a seeded base (fixture), then it has exactly the customers asked for and everything around them
    assert Customer.objects.count() == CUSTOMERS
    assert Company.objects.exists() and Lead.objects.exists() and Deal.objects.exists()
    assert all(order.total == sum(item.line_total for item in order.items.all())
               for order in Order.objects.prefetch_related("items"))
    assert Order.objects.filter(items__isnull=False).distinct().count() == Order.objects.count()
    assert set(Deal.objects.values_list("service", flat=True)) - {""}
    for model in (Note, Task, Call, EmailMessage, SmsMessage, ChatMessage):
        assert model.objects.exists(), model
    assert Note.objects.filter(pinned=True).exists()
    # the pipelines and their stage meanings
    sales = Pipeline.objects.get(kind=Pipeline.Kind.DEAL, name="Sales")
    assert list(sales.stages.values_list("name", "semantic")) == [
        ("New", "open"), ("Negotiation", "open"), ("Won", "won"), ("Lost", "lost")]
    leads = Pipeline.objects.get(kind=Pipeline.Kind.LEAD)
    assert list(leads.stages.values_list("name", "semantic")) == [
        ("Incoming", "open"), ("Qualified", "open"), ("Converted", "won"), ("Junk", "lost")]
    assert Lead.objects.values("stage").distinct().count() >= 3
    assert Lead.objects.values("channel").distinct().count() >= 4
    # companies carry legal forms
    names = list(Company.objects.values_list("name", flat=True))
    assert any(form in name for name in names for form in ("LLC", "Inc.", "GmbH", "ООО", "АО", "AG", "Corp."))


def test_seed_demo_plants_the_same_phone_in_national_and_international_form(seeded):
    # given the seeded base, then some person has two records whose phones differ as text but not in E.164
    pairs = []
    for records in people().values():
        numbers = [(phone.number, phone.e164) for record in records for phone in record.phones.all()]
        by_e164 = defaultdict(set)
        for number, e164 in numbers:
            by_e164[e164].add(number)
        pairs += [texts for e164, texts in by_e164.items() if e164 and len(texts) > 1]
    assert pairs
    assert any(any(text.startswith("8 (9") for text in texts) and any(text.startswith("+7 9") for text in texts)
               for texts in pairs)


def test_seed_demo_plants_cyrillic_latin_swapped_typo_and_email_case_pairs(seeded):
    # given the seeded base
    kinds = defaultdict(list)
    for records in people().values():
        original = records[0]
        for duplicate in records[1:]:
            kinds[duplicate.custom_fields["demo_duplicate"]].append((original, duplicate))

    # then each kind of planted duplicate is there and looks like what its name says
    assert set(kinds) == {"phone_format", "email_case", "swapped_name", "translit", "typo"}
    original, latin = kinds["translit"][0]
    assert any("\u0400" <= char <= "\u04ff" for char in original.last_name)
    assert latin.last_name.isascii() and latin.last_name != original.last_name
    original, swapped = kinds["swapped_name"][0]
    assert (swapped.first_name, swapped.last_name) == (original.last_name, original.first_name)
    original, typo = kinds["typo"][0]
    assert len(typo.last_name) == len(original.last_name)
    assert sum(a != b for a, b in zip(typo.last_name, original.last_name)) == 1
    original, other_case = kinds["email_case"][0]
    first_email, second_email = original.emails.get().address, other_case.emails.get().address
    assert first_email != second_email and first_email.lower() == second_email.lower()


def test_seed_demo_keeps_different_people_apart(seeded):
    # given the seeded base, then no phone or email is shared by two different people, so the ground truth is clean
    owners_of = defaultdict(set)
    for person, records in people().items():
        for record in records:
            for phone in record.phones.all():
                owners_of[("phone", phone.e164)].add(person)
            for email in record.emails.all():
                owners_of[("email", email.address.lower())].add(person)
    assert owners_of
    assert all(len(persons) == 1 for persons in owners_of.values())
    # and about 5-10 % of people have duplicates
    groups = people()
    with_duplicates = sum(1 for records in groups.values() if len(records) > 1)
    assert 0.05 <= with_duplicates / len(groups) <= 0.10


def test_seed_demo_plants_telegram_leads_without_a_phone(seeded):
    # given the seeded base, then a Telegram lead knows only a chat or username, and its person has another record
    telegram_leads = Lead.objects.filter(custom_fields__demo_duplicate="telegram_lead").prefetch_related(
        "phones", "messengers")
    assert telegram_leads
    for lead in telegram_leads:
        assert lead.channel == Lead.Channel.TELEGRAM
        assert not lead.phones.all()
        assert lead.messengers.all()
        person = lead.custom_fields["demo_person"]
        others = (Lead.objects.filter(custom_fields__demo_person=person).exclude(pk=lead.pk).exists()
                  or Customer.objects.filter(custom_fields__demo_person=person).exists())
        assert others, person
    # and some of them have a phone-call lead of the same person with a phone
    persons = set(telegram_leads.values_list("custom_fields__demo_person", flat=True))
    assert Lead.objects.filter(channel=Lead.Channel.PHONE, custom_fields__demo_person__in=persons,
                               phones__isnull=False).exists()


def test_seed_demo_is_deterministic_with_a_seed(db):
    # given a seed, when the base is made twice from an empty database
    def snapshot():
        return [
            (c.first_name, c.last_name, c.custom_fields, sorted(p.number for p in c.phones.all()))
            for c in Customer.objects.prefetch_related("phones").order_by("pk")
        ]

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        demo_seed(customers=40, seed=5)
        first = snapshot()
        raise Rollback
    assert not Customer.objects.exists()
    demo_seed(customers=40, seed=5)

    # then both are the same, and another seed gives another base
    assert snapshot() == first
    with pytest.raises(Rollback), transaction.atomic():
        Customer.objects.all().delete()
        demo_seed(customers=40, seed=6)
        assert snapshot() != first
        raise Rollback


def test_seed_demo_tells_duplicate_control_about_every_record(db):
    # given a receiver of records_bulk_saved, as the duplicate index is
    saved = defaultdict(set)

    def receiver(sender, model, pks, **kwargs):
        assert sender is model
        saved[model].update(pks)

    records_bulk_saved.connect(receiver, weak=False, dispatch_uid="test-seed-log")
    try:
        # when the base is seeded
        demo_seed(customers=60, seed=1)
    finally:
        records_bulk_saved.disconnect(dispatch_uid="test-seed-log")

    # then it heard of every customer, company, lead, deal and order
    for model in (Customer, Company, Lead, Deal, Order):
        assert saved[model] == set(model.objects.values_list("pk", flat=True)), model


def test_seed_demo_runs_a_bounded_number_of_queries(db, django_assert_max_num_queries):
    # given 300 customers and ~1,500 other rows, then the seed needs a few hundred queries, not one per row
    with django_assert_max_num_queries(400):
        demo_seed(customers=300, seed=2)


def test_seed_demo_command_prints_what_it_made(db):
    out = StringIO()

    call_command("seed_demo", "--customers", "30", "--seed", "3", stdout=out)

    assert Customer.objects.count() == 30
    assert "customers: 30" in out.getvalue()
    assert "seed 3" in out.getvalue()


def test_seed_demo_command_refuses_zero_customers(db):
    with pytest.raises(CommandError, match="at least 1"):
        call_command("seed_demo", "--customers", "0")
