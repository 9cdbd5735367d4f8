"""The finder: duplicates of a record with reasons in words, counts for a page, shared keys, not-a-duplicate."""
import pytest
from django.core.exceptions import ValidationError

from crm.models import Customer, Lead
from dedup.engine.finder import duplicate_counts, duplicates_of, duplicates_of_values
from dedup.engine.not_duplicates import not_duplicate_clear, not_duplicate_mark
from dedup.engine.selectors import with_duplicates
from dedup.models import NotDuplicate
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, lead_with, pks

pytestmark = pytest.mark.django_db

OFFICE = "+7 495 123-45-67"
NAMES = [
    ("Ivan", "Petrov"), ("Maria", "Sidorova"), ("Oleg", "Smirnov"), ("Anna", "Kuznetsova"), ("Pavel", "Volkov"),
    ("Elena", "Popova"), ("Sergei", "Lebedev"), ("Olga", "Kozlova"), ("Dmitri", "Novikov"), ("Irina", "Morozova"),
    ("Nikolai", "Sokolov"), ("Tatiana", "Pavlova"), ("Andrei", "Fedorov"), ("Natalia", "Orlova"),
]


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def test_duplicates_of_gives_reasons_in_words():
    # Given a customer and a second record of the same person: the phone typed nationally
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"])
    second = customer_with("Иван", "Петров", phones=["8 912 345-67-89"], emails=["IVAN@example.com"])

    # When the card asks for the first one's duplicates
    matches = duplicates_of(first)

    # Then the second comes with the rules it matched, each in words, the phone in international format
    assert len(matches) == 1
    match = matches[0]
    assert match.record == second
    assert match.score == 100
    assert set(match.reasons) == {"same phone +7 912 345-67-89", "same email ivan@example.com"}
    assert match.rule.name in {"Same phone", "Same email"}
    assert {rule.name for rule in match.rules} == {"Same phone", "Same email"}


def test_duplicates_of_takes_at_most_five_queries(django_assert_max_num_queries):
    # Given a customer with several duplicates by several rules, and unrelated customers
    company = factories.CompanyFactory(name="Acme LLC")
    first = customer_with("Ivan", "Petrov", company=company, phones=["+79123456789"], emails=["ivan@example.com"])
    for index in range(6):
        customer_with("Ivan", "Petrov", company=company, phones=[f"+7912345678{index}"])
        customer_with("I.", "Petrov", phones=["+79123456789"] if index < 2 else [])
    not_duplicate_mark(entity="customer", record_ids=[first.pk, first.pk + 1], user=None)

    # When its duplicates are looked for
    with django_assert_max_num_queries(5):
        matches = duplicates_of(first)
        reasons = [match.reasons for match in matches]

    # Then all of them were found (5 by name and company, one unticked; 2 by phone)
    assert len(matches) == 7
    assert all(reasons)


def test_duplicates_of_not_a_duplicate_is_remembered_in_either_order():
    # Given two customers with one phone, marked as not duplicates (high id first)
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    second = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    created = not_duplicate_mark(entity="customer", pair=(second.pk, first.pk), user=factories.UserFactory())

    # When either card is opened, or the pair is marked again the other way round
    again = not_duplicate_mark(record=first, other=second, user=None)

    # Then neither sees the other, and the pair is stored once, lowest id first
    assert created == 1 and again == 0
    assert duplicates_of(first) == [] and duplicates_of(second) == []
    assert duplicate_counts(Customer, [first.pk, second.pk]) == {first.pk: 0, second.pk: 0}
    assert list(NotDuplicate.objects.values_list("low_id", "high_id")) == [(first.pk, second.pk)]

    # And when the mark is cleared they are duplicates again
    not_duplicate_clear(entity="customer", pair=(first.pk, second.pk))
    assert pks(duplicates_of(first)) == {second.pk}


def test_not_duplicate_mark_refuses_bad_input():
    # Given one customer
    customer = customer_with("Ivan", "Petrov")

    # When a pair is marked with itself, with a missing record, or across entities
    # Then each is refused with a clear error and nothing is stored
    with pytest.raises(ValidationError, match="two different records"):
        not_duplicate_mark(entity="customer", pair=(customer.pk, customer.pk), user=None)
    with pytest.raises(ValidationError, match="do not exist"):
        not_duplicate_mark(entity="customer", pair=(customer.pk, customer.pk + 100), user=None)
    with pytest.raises(ValidationError, match="same kind"):
        not_duplicate_mark(record=customer, other=factories.CompanyFactory(), user=None)
    with pytest.raises(ValidationError, match="not an entity"):
        not_duplicate_mark(entity="planet", pair=(1, 2), user=None)
    assert not NotDuplicate.objects.exists()


def test_duplicates_of_shared_office_number_does_not_count_alone():
    # Given 14 different people calling from one office switchboard, two of them the same person at one company
    acme = factories.CompanyFactory(name="Acme LLC")
    people = [customer_with(first, last, phones=[OFFICE]) for first, last in NAMES]
    ivan_again = customer_with("Ivan", "Petrov", phones=[OFFICE], company=acme)
    people[0].company = acme
    people[0].save()

    # When the duplicates of a colleague and of Ivan are looked for
    colleague = duplicates_of(people[1])
    ivan = duplicates_of(people[0])

    # Then the office number alone makes nobody a duplicate, the card says why, and name + company still count
    assert colleague == []
    assert colleague.notes == ["+7 495 123-45-67: shared office number, 14 people"]
    assert pks(ivan) == {ivan_again.pk}
    assert ivan[0].reasons == ["same full name Petrov Ivan + same company name Acme LLC"]
    assert duplicate_counts(Customer, [p.pk for p in people]) == {
        p.pk: (1 if p.pk == people[0].pk else 0) for p in people
    }


def test_duplicates_of_a_phone_of_two_records_of_one_person_is_not_shared():
    # Given three records of one person (spelled three ways) with one phone
    first = customer_with("Ivan", "Petrov", phones=[OFFICE])
    second = customer_with("PETROV", "IVAN", phones=[OFFICE])
    third = customer_with("Иван", "Петров", phones=[OFFICE])

    # When the duplicates are looked for
    matches = duplicates_of(first)

    # Then the phone counts: one person is not "several people"
    assert pks(matches) == {second.pk, third.pk}
    assert matches.notes == []


def test_duplicates_of_archived_records_never_match():
    # Given a customer and a second record of them merged away (archived)
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    merged = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    merged.is_archived = True
    merged.merged_into = first
    merged.save()

    # When the duplicates of either are looked for
    # Then there are none
    assert duplicates_of(first) == []
    assert duplicates_of(merged) == []


def test_duplicates_of_limit_keeps_the_best():
    # Given a customer with five duplicates: three share only the phone (one rule), and the two made last
    # (so the id order does not favour them) share the phone and the email (two rules)
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"])
    weaker = [customer_with("Ivan", "Petrov", phones=["+79123456789"]) for _index in range(3)]
    stronger = [
        customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"]) for _index in range(2)
    ]

    # When at most three are asked for
    kept = duplicates_of(first, limit=3)

    # Then the two matching on more rules come first, then the oldest of the others
    assert [match.record.pk for match in kept] == [*(record.pk for record in stronger), weaker[0].pk]
    assert [len(match.rules) for match in kept] == [2, 2, 1]


def test_duplicate_counts_constant_queries_for_a_page(django_assert_max_num_queries):
    # Given a page of 30 customers, every third with a duplicate
    page = []
    for index in range(30):
        customer = customer_with(f"Name{index}", "Person", phones=[f"+791200{index:05d}"])
        page.append(customer)
        if index % 3 == 0:
            customer_with(f"Name{index}", "Person", phones=[f"8 912 00{index:05d}"])

    # When the change list counts the duplicates of the page
    with django_assert_max_num_queries(3):
        counts = duplicate_counts(Customer, [customer.pk for customer in page])

    # Then each row has its count
    assert counts == {customer.pk: (1 if index % 3 == 0 else 0) for index, customer in enumerate(page)}


def test_duplicates_of_values_checks_an_incoming_lead_before_it_is_saved(lead_pipeline):
    # Given an open lead and a won one with one phone
    stages = {stage.name: stage for stage in lead_pipeline.stages.all()}
    open_lead = lead_with(stages["New"], phones=["+79123456789"])
    lead_with(stages["Won"], phones=["+79123456789"])

    # When an incoming request with that phone typed nationally is checked, for the "New" stage
    matches = duplicates_of_values("lead", values={"phone": ["8 (912) 345-67-89"]}, stage=stages["New"])

    # Then the open lead is its duplicate and the won one is not
    assert pks(matches) == {open_lead.pk}
    assert matches[0].reasons == ["same phone +7 912 345-67-89"]
    assert Lead.objects.count() == 2


def test_with_duplicates_filter_agrees_with_the_badges():
    # Given duplicates by phone, a shared office number, a not-duplicate pair and loners
    acme = factories.CompanyFactory(name="Acme LLC")
    by_phone = [customer_with("Ivan", "Petrov", phones=["+79123456789"]) for _ in range(2)]
    office = [customer_with(first, last, phones=[OFFICE]) for first, last in NAMES[:4]]
    by_name = [customer_with("Maria", "Sidorova", company=acme) for _ in range(2)]
    marked = [customer_with("Oleg", "Smirnov", emails=["oleg@example.com"]) for _ in range(2)]
    not_duplicate_mark(entity="customer", record_ids=[m.pk for m in marked], user=None)
    loner = customer_with("Anna", "Kuznetsova", phones=["+79990001122"])

    # When the change list is filtered on "has duplicates" and on "no duplicates"
    having = set(with_duplicates(Customer.objects.all()).values_list("pk", flat=True))
    without = set(with_duplicates(Customer.objects.all(), False).values_list("pk", flat=True))

    # Then the filter shows exactly the records whose badge shows a count
    everyone = by_phone + office + by_name + marked + [loner]
    counts = duplicate_counts(Customer, [c.pk for c in everyone])
    assert having == {pk for pk, count in counts.items() if count}
    assert having == {c.pk for c in by_phone + by_name}
    assert without == {c.pk for c in everyone} - having


def test_duplicates_of_an_unsaved_record_uses_its_own_fields():
    # Given a saved customer at a company
    acme = factories.CompanyFactory(name="Acme LLC")
    saved = customer_with("Ivan", "Petrov", company=acme)

    # When a customer being typed in (not saved, no phones yet) is checked
    draft = Customer(first_name="IVAN", last_name="PETROV", company=acme)
    matches = duplicates_of(draft)

    # Then the saved one is found by name and company, and nothing was written
    assert pks(matches) == {saved.pk}
    assert Customer.objects.count() == 1
