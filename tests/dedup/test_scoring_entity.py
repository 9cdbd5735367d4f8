"""Scored matching of customers from the database: learned without labels, stored, groups with reasons."""
import pytest
from django.core.management import call_command

from dedup import registry
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.entity import entity_schema, scoring_learn
from dedup.engine.scoring.pairs import pair_scores
from dedup.models import ScoringModel, ScoringWeight
from tests import factories

FIRSTS = ["Anna", "Olga", "Ivan", "Petr", "John", "Mary", "Kate", "Paul", "Mark", "Emma", "Oleg", "Irina", "Denis"]
SURNAMES = ["Sokolov", "Lebedev", "Kozlov", "Novikov", "Morozov", "Volkov", "Baker", "Walker", "Wright", "Green",
            "Hill", "Adams", "Nelson", "Carter", "Roberts", "Orlov", "Belov", "Titov", "Gusev", "Frolov"]


def customer(first, last, *, phone=None, email=None, company=None):
    record = factories.CustomerFactory(first_name=first, last_name=last, company=company)
    if phone:
        factories.PhoneFactory(content_object=record, number=phone)
    if email:
        factories.EmailFactory(content_object=record, address=email)
    return record


PEOPLE = 400


@pytest.fixture
def base(db):
    """PEOPLE customers with a phone and an email, every fourth entered again (half of those with both
    contacts, half with one)."""
    made = []
    companies = [factories.CompanyFactory(name=f"{word} Trade {index}") for index, word in
                 enumerate(["Vector", "Alfa", "Sever", "Ural", "Volga", "Nord", "Delta", "Orion"] * 5)]
    for index in range(PEOPLE):
        first, last = FIRSTS[index % len(FIRSTS)], SURNAMES[index // len(FIRSTS) % len(SURNAMES)]
        first += "" if index < len(FIRSTS) * len(SURNAMES) else "a"
        phone, email = f"+7 903 {index:07d}", f"client{index}@mail.ru"
        company = companies[index % len(companies)] if index % 3 else None
        made.append(customer(first, last, phone=phone, email=email, company=company))
        if index % 4 == 0:
            contacts = {"phone": phone, "email": email} if index % 8 == 0 else {"phone": phone}
            customer(first, last, company=company, **contacts)
    return made


def test_entity_schema_customer_compares_the_full_name_once():
    schema = {spec.name: spec.type for spec in entity_schema(registry.get("customer"))}
    assert schema["full_name"] == c.PERSON_NAME
    assert "first_name" not in schema and "last_name" not in schema
    assert schema["phone"] == c.PHONE and schema["company_name"] == c.COMPANY_NAME


def test_scoring_learn_finds_a_name_variant_at_the_same_company_and_stores_weights(base):
    # Given Michael at Romashka LLC, and "Micheal" at ООО «Ромашка» with no phone or email
    romashka, other = factories.CompanyFactory(name="Romashka LLC"), factories.CompanyFactory(name="ООО «Ромашка»")
    michael = customer("Michael", "Zaitsev", phone="+7 912 555-00-11", email="m.zaitsev@mail.ru", company=romashka)
    micheal = customer("Micheal", "Zaitsev", company=other)
    stranger = customer("Anna", "Zaitseva", company=romashka)

    # When the weights are learned from the base itself
    found = scoring_learn(entity="customer")

    # Then the variant is grouped with Michael, his namesake of the other gender is not
    group = next(group for group in found.groups if michael.pk in group)
    assert micheal.pk in group and stranger.pk not in group
    stored = ScoringModel.objects.get(entity="customer")
    assert stored.records == PEOPLE + PEOPLE // 4 + 3
    assert ScoringWeight.objects.filter(model=stored, field="phone", level="exact").get().m > 0.5


def test_dedup_score_command_prints_groups_with_reasons(base, capsys):
    call_command("dedup_score", "customer", "--show", "1")
    out = capsys.readouterr().out
    assert out.startswith("group #")
    assert "match probability" in out and "for a match" in out
    assert "weights stored for customer" in out


@pytest.mark.django_db
def test_entity_records_whole_base_reads_as_the_orm_does(django_assert_max_num_queries):
    # Given customers with contacts and a company, and one archived
    from dedup.engine.scoring.entity import entity_records

    company = factories.CompanyFactory(name="Vector Trade")
    first = customer("Olga", "Smirnova", phone="+7 903 111-22-33", email="olga@mail.ru", company=company)
    factories.PhoneFactory(content_object=first, number="+7 903 444-55-66")
    customer("Ivan", "Petrov", email="ivan@mail.ru")
    gone = customer("Anna", "Orlova", phone="+7 903 777-88-99")
    gone.is_archived = True
    gone.save()
    spec = registry.get("customer")

    # When the whole base is read (the scan's path) and when the same records are read through a queryset
    with django_assert_max_num_queries(8):
        whole = dict(entity_records(spec))
    through_orm = dict(entity_records(spec, spec.model._default_manager.all()))

    # Then both give the same values per field, the archived record left out, in a constant number of queries
    assert whole == through_orm
    assert gone.pk not in whole
    assert sorted(whole[first.pk]["phone"]) == ["+79031112233", "+79034445566"]
    assert whole[first.pk]["company_name"] == ["Vector Trade"]


def test_scoring_learn_on_a_small_base_scores_one_customers_copies_as_a_match(db):
    # Given a new CRM's first 80 customers (own names and phones) and one customer entered four times with one
    # name and one phone: 5 % of the base, so by their counts "Ivan Petrov" and his phone look common
    for index in range(80):
        customer(FIRSTS[index % len(FIRSTS)], SURNAMES[index // len(FIRSTS)], phone=f"+7 903 {index:07d}")
    copies = [customer("Ivan", "Petrov", phone=phone) for phone in
              ("+7 912 345-67-89", "8 (912) 345-67-89", "+79123456789", "+7 (912) 345 67 89")]

    # When the model is learned from the base
    result = scoring_learn(entity="customer")

    # Then the prior is near the truth (6 matching pairs of 3,486) and the copies are one group, each pair scored
    # well above the threshold, with the name and the phone as its reasons
    assert 1e-3 < result.stored.prior < 3e-3
    assert sorted(sorted(group) for group in result.groups) == [sorted(record.pk for record in copies)]
    scores = pair_scores("customer", copies[0], copies[1:])
    assert all(score.probability > 0.9 for score in scores.values())
    assert any("full name" in reason and "phone" not in reason for reason in scores[copies[1].pk].why())
