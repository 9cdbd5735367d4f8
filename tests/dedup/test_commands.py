"""`dedup_scan ENTITY [--json PATH]` and `dedup_rebuild_index [ENTITY]`."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dedup.models import MatchKey
from tests.dedup.engine_helpers import customer_with, ensure_default_rules

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def test_dedup_scan_writes_the_groups_as_json(tmp_path):
    # Given two records of one person (one with an external id) and a third customer
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"], external_id="crm-1")
    second = customer_with("Иван", "Петров", phones=["8 912 345-67-89"])
    customer_with("Maria", "Sidorova", phones=["+79990001122"])
    path = tmp_path / "groups.json"

    # When the scan is run from the command line
    call_command("dedup_scan", "customer", "--json", str(path), "--no-progress", stderr=StringIO())

    # Then the file has exactly the documented shape
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"entity", "groups", "stats"}
    assert data["entity"] == "customer"
    assert data["groups"] == [
        {"ids": [first.pk, second.pk], "external_ids": ["crm-1", ""], "reasons": ["same phone +7 912 345-67-89"]}
    ]
    assert set(data["stats"]) == {"records", "groups", "seconds"}
    assert data["stats"]["records"] == 3 and data["stats"]["groups"] == 1
    assert isinstance(data["stats"]["seconds"], float)


def test_dedup_scan_prints_a_summary_and_draws_progress():
    # Given two records of one person
    customer_with("Ivan", "Petrov", emails=["ivan@example.com"])
    customer_with("Ivan", "Petrov", emails=["ivan@example.com"])
    out, err = StringIO(), StringIO()

    # When the scan runs without --json
    call_command("dedup_scan", "customer", stdout=out, stderr=err)

    # Then the group is printed with its reason, and the summary and progress bar go to stderr
    assert "same email ivan@example.com" in out.getvalue()
    assert "1 groups of duplicates (2 records) among 2 customer records" in err.getvalue()
    assert "Scanning customer" in err.getvalue()


def test_dedup_scan_refuses_an_unknown_entity():
    # When an entity that does not exist is asked for
    # Then the command fails with the list of entities
    with pytest.raises(CommandError, match="Unknown entity 'planet'.*customer"):
        call_command("dedup_scan", "planet")


def test_dedup_rebuild_index_restores_the_keys():
    # Given customers whose index was lost
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    MatchKey.objects.all().delete()
    out = StringIO()

    # When the index of customers is rebuilt
    call_command("dedup_rebuild_index", "customer", "--no-progress", stdout=out)

    # Then the keys are back and the figures printed
    assert set(MatchKey.objects.filter(record_id=customer.pk).values_list("kind", "key")) == {
        ("full_name", "ivan petrov"),
        ("phone", "+79123456789"),
        ("_score", "n:IFN PTRF"),  # the scored matcher's blocking key (dedup/engine/score_keys.py)
    }
    assert "customer: 1 records, 3 keys" in out.getvalue()


def test_dedup_rebuild_index_of_everything():
    # Given a customer
    customer_with("Ivan", "Petrov")
    out = StringIO()

    # When every entity is rebuilt
    call_command("dedup_rebuild_index", "--no-progress", stdout=out)

    # Then each entity reports
    for entity in ("customer", "company", "lead", "deal", "order"):
        assert f"{entity}:" in out.getvalue()
