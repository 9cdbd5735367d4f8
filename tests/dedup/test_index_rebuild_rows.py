"""A background rebuild writes exactly the keys the incremental upkeep writes: the same rows, byte for byte, for
generated records whose names, companies and contacts repeat (the rebuild writes only what differs)."""
import random
from collections import Counter

import pytest

from crm.models import Customer
from dedup import registry
from dedup.engine import index
from dedup.engine.index import builds
from dedup.models import IndexBuild, MatchKey
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, make_rule

pytestmark = pytest.mark.django_db

FIRST = ["Ivan", "Иван", "Olga", "Ольга", "Michael", "Micheal", "Jeffrey", "Geoffrey", "Anna", "N/A", "", "Mr. John",
         "Ю.", "Sergey", "Сергей"]
LAST = ["Petrov", "Петров", "Smirnova", "Смирнова", "Smith", "Smyth", "O'Brien", "unknown", "", "Müller", "Ivanov"]
COMPANIES = ["ООО «Ромашка»", "Romashka LLC", "Acme Inc", "Acme, L.L.C.", "Sibir Telecom 773", "n/a", "Vector 1552"]
PHONES = ["+7 912 345-67-89", "8 (912) 345 67 89", "79123456780", "1234567890", "0000000", "+1 415 555 0100"]
EMAILS = ["Ivan.Petrov@gmail.com", "ivanpetrov+shop@gmail.com", "noemail@example.com", "olga@mail.ru", "n/a",
          "anna@example.com"]
HANDLES = ["Ivan_P", "olga", "telegram_user", "-"]


def generated_customers(count: int, seed: int = 16) -> list[Customer]:
    """Customers saved one by one, as the upkeep indexes them: names, companies and contacts drawn from small
    pools so that values repeat, with placeholders, scripts, legal forms and archived records among them."""
    pick = random.Random(seed)
    companies = [factories.CompanyFactory(name=name) for name in COMPANIES]
    created = []
    for _ in range(count):
        customer = customer_with(
            pick.choice(FIRST), pick.choice(LAST),
            phones=pick.sample(PHONES, pick.randint(0, 2)),
            emails=pick.sample(EMAILS, pick.randint(0, 2)),
            handles=pick.sample(HANDLES, pick.randint(0, 1)),
            company=pick.choice([None, *companies]),
            middle_name=pick.choice(["", "Sergeevich", "Сергеевич"]),
        )
        if pick.random() < 0.1:
            customer.is_archived = True
            customer.save()
        created.append(customer)
    return created


def stored_rows(entity: str = "customer") -> Counter:
    return Counter(MatchKey.objects.filter(entity=entity).values_list("record_id", "kind", "key", "value"))


@pytest.fixture
def every_mode():
    """The default rules plus a fuzzy full name (blocking keys) and a provider-folded email: every mode of key."""
    ensure_default_rules()
    make_rule("customer", "similar name", [("full_name", "fuzzy", 85)], position=90)
    make_rule("customer", "folded email", [("email", "normalized", {"fold_email": True})], position=91)
    spec = registry.get("customer")
    kinds = index.indexed_kinds(spec)
    assert {"full_name:block", "email:fold", "_score", "phone", "company_name"} <= kinds
    return spec


def test_index_rebuild_rows_equal_the_upkeep_rows(every_mode, monkeypatch):
    # Given customers indexed one save at a time (the incremental upkeep)
    generated_customers(60)
    upkeep = stored_rows()
    assert len(upkeep) > 300

    # When every kind is rebuilt in the background, in parts
    monkeypatch.setattr(builds, "PART_RECORDS", 25)
    first = builds.build_queue(spec=every_mode, kinds=None, reason=IndexBuild.Reason.PLACEHOLDERS)
    for part in IndexBuild.objects.filter(batch=first.pk).order_by("id"):
        index.build_run(build_id=part.pk)

    # Then the index holds exactly the rows the upkeep had written
    assert IndexBuild.objects.filter(batch=first.pk).exclude(status=IndexBuild.Status.DONE).count() == 0
    assert stored_rows() == upkeep


def test_index_rebuild_new_kind_adds_only_its_rows(every_mode, monkeypatch):
    # Given customers indexed as saved, and one kind of key missing (as when a rule needing it was just added)
    generated_customers(30, seed=7)
    upkeep = stored_rows()
    MatchKey.objects.filter(entity="customer", kind="full_name:block").delete()
    others = Counter({row: n for row, n in upkeep.items() if row[1] != "full_name:block"})
    assert stored_rows() == others

    # When a rebuild of that kind alone runs
    build = builds.build_queue(spec=every_mode, kinds={"full_name:block"}, reason=IndexBuild.Reason.RULE)
    index.build_run(build_id=build.pk)

    # Then that kind's rows are back exactly, and no other row was touched
    assert stored_rows() == upkeep
