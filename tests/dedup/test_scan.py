"""The full scan: groups by union-find over every rule's blocks, agreeing with the finder, in chunks."""
import random
import re

import pytest

from crm.models import Stage
from dedup.engine.finder import duplicates_of
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.scan import ScanStats, find_groups, merge_groups, plan_chunks
from dedup.models import Condition
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, lead_with, only_rules

pytestmark = pytest.mark.django_db

OFFICE = "+7 495 123-45-67"


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def groups_of(entity, **kwargs):
    return list(find_groups(entity, **kwargs))


def test_find_groups_joins_matches_transitively_with_their_reasons():
    # Given A and B sharing a phone, B and C an email, and D alone
    a = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    b = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"], emails=["ivan@example.com"])
    c = customer_with("Ivan", "Petrov", emails=["Ivan@Example.com"])
    customer_with("Maria", "Sidorova", phones=["+79990001122"])

    # When the customers are scanned
    groups = groups_of("customer")

    # Then A, B and C are one group, with both reasons
    assert [group.ids for group in groups] == [sorted([a.pk, b.pk, c.pk])]
    assert set(groups[0].reasons) == {"same phone +7 912 345-67-89", "same email ivan@example.com"}
    assert len(groups[0].rule_ids) == 2


def test_find_groups_never_joins_a_not_duplicate_pair():
    # Given three records with one phone, two of them marked as not duplicates
    a = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    b = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    c = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    not_duplicate_mark(entity="customer", pair=(a.pk, c.pk), user=None)

    # When the customers are scanned
    groups = groups_of("customer")

    # Then the marked pair is never in one group
    assert len(groups) == 1
    assert not {a.pk, c.pk} <= set(groups[0].ids)
    assert b.pk in groups[0].ids


def test_find_groups_ignores_a_shared_office_number():
    # Given three different people on one switchboard and two records of a fourth with a private phone
    for first, last in [("Ivan", "Petrov"), ("Maria", "Sidorova"), ("Oleg", "Smirnov")]:
        customer_with(first, last, phones=[OFFICE])
    anna = [customer_with("Anna", "Kuznetsova", phones=["+79990001122"]) for _ in range(2)]
    stats = ScanStats()

    # When the customers are scanned
    groups = groups_of("customer", stats=stats)

    # Then only Anna's records are a group; the switchboard is counted as a shared key
    assert [group.ids for group in groups] == [[anna[0].pk, anna[1].pk]]
    assert stats.shared_keys == 1


def test_find_groups_scope_and_must_equal_for_deals():
    # Given one customer's deals: two open for one service, one open for another, one won for the first
    customer = customer_with("Ivan", "Petrov")
    open_stage = factories.StageFactory(name="New")
    won = factories.StageFactory(name="Won", semantic=Stage.Semantic.WON)

    def deal(stage, service):
        return factories.DealFactory(customer=customer, stage=stage, pipeline=stage.pipeline, service=service)

    first, second = deal(open_stage, "Consulting"), deal(open_stage, "consulting")
    deal(open_stage, "Automation")
    deal(won, "Consulting")

    # When deals are scanned
    groups = groups_of("deal")

    # Then only the two open deals for one service are a group
    assert [group.ids for group in groups] == [[first.pk, second.pk]]


def test_find_groups_leads_of_closed_stages_are_left_out(lead_pipeline):
    # Given leads with one phone in New, Won and Lost
    stages = {stage.name: stage for stage in lead_pipeline.stages.all()}
    new = lead_with(stages["New"], phones=["+79123456789"])
    in_progress = lead_with(stages["In progress"], phones=["+79123456789"])
    lead_with(stages["Won"], phones=["+79123456789"])
    lead_with(stages["Lost"], phones=["+79123456789"])

    # When leads are scanned
    # Then only the open ones are grouped
    assert [group.ids for group in groups_of("lead")] == [[new.pk, in_progress.pk]]


def test_find_groups_fuzzy_rule():
    # Given a fuzzy name rule and a surname typo
    only_rules("customer", ("Similar name", [("full_name", Condition.Method.FUZZY, 90)]))
    first = customer_with("Stanislav", "Kuznetsov")
    typo = customer_with("Stanislav", "Kuzentsov")
    customer_with("Stanislava", "Kuznetsova")  # another person (gendered forms)

    # When customers are scanned
    groups = groups_of("customer")

    # Then the typo is grouped with its score in words
    assert [group.ids for group in groups] == [[first.pk, typo.pk]]
    assert len(groups[0].reasons) == 1
    assert re.fullmatch(r"full name (9\d)% similar", groups[0].reasons[0])


def _random_base(seed: int, size: int):
    """Customers drawn from a small pool of names, phones, emails and companies, so collisions are many."""
    rng = random.Random(seed)
    names = [("Ivan", "Petrov"), ("Maria", "Sidorova"), ("Oleg", "Smirnov"), ("Anna", "Kuznetsova"), ("Pavel", "Volkov")]
    companies = [None] + [factories.CompanyFactory(name=name) for name in ("Acme LLC", "ACME Inc", "Globex")]
    phones = [f"+7912000{i:04d}" for i in range(12)]
    emails = [f"user{i}@example.com" for i in range(12)]
    records = []
    for _index in range(size):
        first, last = rng.choice(names)
        records.append(
            customer_with(
                first,
                last,
                company=rng.choice(companies),
                phones=rng.sample(phones, rng.randint(0, 2)),
                emails=rng.sample(emails, rng.randint(0, 1)),
            )
        )
    return records


def test_find_groups_agrees_with_the_finder_on_a_random_base():
    # Given a random base with many collisions, shared keys and a few not-duplicate pairs
    records = _random_base(seed=7, size=60)
    not_duplicate_mark(entity="customer", pair=(records[0].pk, records[1].pk), user=None)

    # When it is scanned, and every record's duplicates are looked for
    groups = groups_of("customer")
    group_of = {pk: index for index, group in enumerate(groups) for pk in group.ids}
    matches = {record.pk: {m.record.pk for m in duplicates_of(record, limit=1000)} for record in records}

    # Then every match of the finder is inside one group, and every grouped record has a match there
    for pk, found in matches.items():
        for other in found:
            assert group_of.get(pk) is not None and group_of.get(pk) == group_of.get(other)
    for group in groups:
        for pk in group.ids:
            assert matches[pk] & set(group.ids)


def test_find_groups_in_chunks_equals_the_whole_scan():
    # Given a random base
    _random_base(seed=11, size=40)
    whole = groups_of("customer")

    # When the scan is split in three key-range chunks and their groups are joined
    chunks = plan_chunks("customer", 3)
    joined = merge_groups(group for chunk in chunks for group in find_groups("customer", chunk=chunk))

    # Then the groups are the same
    assert len(chunks) == 3
    assert [group.ids for group in joined] == [group.ids for group in whole]
