"""Every admin change that changes which keys the index must hold rebuilds them in the background on a large
base, and until it is done the rule page, its preview, the card and the queue say so: a custom field's type
(saved, changed, deleted), the placeholder list. Relearning the scoring model or changing its threshold changes
no key (the scoring keys read names and companies only), so it rebuilds nothing."""
import re

import pytest
from django.urls import reverse

from crm.models import Customer
from dedup import registry
from dedup.engine import index
from dedup.engine.scoring.entity import scoring_learn
from dedup.models import CustomFieldType, IndexBuild, IndexedKind, MatchKey, Rule, ScoringModel
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules
from tests.dedup.test_index_builds import BEING_REBUILT, pages, rule_post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def large_base(monkeypatch):
    """Default rules, and every base counts as large: changes are rebuilt by a worker, not in the request."""
    ensure_default_rules()
    monkeypatch.setattr(index, "BACKFILL_INLINE_LIMIT", 1)
    monkeypatch.setattr(index.services, "BACKFILL_INLINE_LIMIT", 1)
    yield
    from dedup.engine import match_settings, normalize

    normalize.use_placeholders(normalize.DEFAULT_PLACEHOLDERS)
    registry.set_custom_kinds({})
    match_settings._applied_version = None


def born_keys() -> set:
    return set(MatchKey.objects.filter(entity="customer", kind="custom:born").values_list("record_id", "key"))


def latest_build() -> IndexBuild:
    return IndexBuild.objects.filter(entity="customer").order_by("-id").first()


def run_queued() -> None:
    for build in IndexBuild.objects.filter(entity="customer", status=IndexBuild.Status.QUEUED).order_by("id"):
        index.build_run(build_id=build.pk)


def test_index_build_custom_field_type_saved_in_the_admin_fills_the_new_kind(admin_client):
    # Given customers with a birthday no rule reads (not in the index)
    first = customer_with("Ivan", "Petrov", custom_fields={"born": "09.04.1956"})
    second = customer_with("Olga", "Smirnova", custom_fields={"born": "1956-04-09"})
    assert not IndexedKind.objects.filter(entity="customer", kind="custom:born").exists()

    # When the admin types it as a date: the scored matcher now compares it, and reads its keys
    response = admin_client.post(
        reverse("admin:dedup_customfieldtype_add"), {"entity": "customer", "key": "born", "type": "date"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    # Then the new kind is kept, its keys are rebuilt in the background, and the screens say so until done
    assert IndexedKind.objects.filter(entity="customer", kind="custom:born").exists()
    build = latest_build()
    assert (build.reason, build.kinds, build.status) == (
        IndexBuild.Reason.FIELD_TYPE, ["custom:born"], IndexBuild.Status.QUEUED
    )
    assert born_keys() == set()
    rule = Rule.objects.filter(entity="customer").first()
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert rule_page.count(BEING_REBUILT) == 2 and BEING_REBUILT in card_list and BEING_REBUILT in queue

    # When a worker runs it
    run_queued()

    # Then both birthdays are keyed as one date, and the notices are gone
    assert born_keys() == {(first.pk, "1956-04-09"), (second.pk, "1956-04-09")}
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert BEING_REBUILT not in rule_page + card_list + queue


def test_index_build_custom_field_type_changed_and_deleted_in_the_admin(admin_client):
    # Given a typed birthday, keyed as a date
    first = customer_with("Ivan", "Petrov", custom_fields={"born": "09.04.1956"})
    customer_with("Olga", "Smirnova")
    admin_client.post(reverse("admin:dedup_customfieldtype_add"), {"entity": "customer", "key": "born", "type": "date"})
    run_queued()
    assert born_keys() == {(first.pk, "1956-04-09")}
    typed = CustomFieldType.objects.get(entity="customer", key="born")

    # When the admin changes its type to text
    response = admin_client.post(
        reverse("admin:dedup_customfieldtype_change", args=[typed.pk]),
        {"entity": "customer", "key": "born", "type": "text"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    # Then its keys are rebuilt in the background as text
    build = latest_build()
    assert (build.reason, build.kinds, build.status) == (
        IndexBuild.Reason.FIELD_TYPE, ["custom:born"], IndexBuild.Status.QUEUED
    )
    run_queued()
    assert born_keys() == {(first.pk, "09.04.1956")}

    # When the admin deletes the type (no rule reads the field)
    response = admin_client.post(reverse("admin:dedup_customfieldtype_delete", args=[typed.pk]), {"post": "yes"})
    assert response.status_code == 302

    # Then the scored matcher no longer reads it: the kind and its keys are gone, nothing is left to rebuild
    assert not IndexedKind.objects.filter(entity="customer", kind="custom:born").exists()
    assert born_keys() == set()
    assert not IndexBuild.objects.filter(entity="customer", status=IndexBuild.Status.QUEUED).exists()


def test_index_build_placeholders_saved_in_the_admin_rebuild_every_kind(admin_client):
    # Given two customers whose phones differ only by a value about to become a placeholder
    first = customer_with("Ivan", "Petrov", emails=["nobody@example.com"])
    customer_with("Olga", "Smirnova", emails=["nobody@example.com"])
    assert MatchKey.objects.filter(entity="customer", kind="email", key="nobody@example.com").count() == 2

    # When the admin adds it to the placeholder list
    response = admin_client.post(
        reverse("admin:dedup_matchsettings_change", args=[1]), {"placeholders": "n/a\nnobody@*"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    # Then every kind of the customers' keys is rebuilt in the background, and the screens say so until done
    build = latest_build()
    assert (build.reason, build.kinds, build.status) == (IndexBuild.Reason.PLACEHOLDERS, [], IndexBuild.Status.QUEUED)
    rule = Rule.objects.filter(entity="customer").first()
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert rule_page.count(BEING_REBUILT) == 2 and BEING_REBUILT in card_list and BEING_REBUILT in queue
    run_queued()
    assert not MatchKey.objects.filter(entity="customer", key="nobody@example.com").exists()
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert BEING_REBUILT not in rule_page + card_list + queue


def test_index_build_scoring_relearned_or_threshold_changed_rebuilds_nothing(admin_client):
    # Given customers whose scoring keys are indexed
    for first, last in [("Michael", "Smith"), ("Micheal", "Smith"), ("Olga", "Smirnova"), ("Olga", "Smirnova")]:
        customer_with(first, last, company=factories.CompanyFactory(name="Acme LLC"))
    keys_before = set(MatchKey.objects.filter(entity="customer").values_list("record_id", "kind", "key", "value"))
    assert any(kind == "_score" for _record, kind, _key, _value in keys_before)

    # When the model is relearned, and the admin changes its threshold
    scoring_learn(entity="customer")
    stored = ScoringModel.objects.get(entity="customer")
    url = reverse("admin:dedup_scoringmodel_change", args=[stored.pk])
    form = admin_client.get(url).content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    response = admin_client.post(url, {**fields, "threshold": "0.8"})
    assert response.status_code == 302, response.content.decode()[:2000]

    # Then no key changed and no rebuild was queued: the screens have nothing to warn about
    assert ScoringModel.objects.get(entity="customer").threshold == 0.8
    keys_after = set(MatchKey.objects.filter(entity="customer").values_list("record_id", "kind", "key", "value"))
    assert keys_after == keys_before
    assert not IndexBuild.objects.exists()
    assert Customer.objects.count() == 4


def test_index_build_earlier_rebuild_still_running_is_said_after_a_later_one_ends(admin_client):
    # Given a rule needing a new kind, then a placeholder change, both waiting for workers
    first = customer_with("Ivan", "Petrov", custom_fields={"position": "Chief buyer"})
    customer_with("Olga", "Smirnova", custom_fields={"position": "chief  buyer"})
    assert rule_post(admin_client).status_code == 302
    rule_build = latest_build()
    admin_client.post(reverse("admin:dedup_matchsettings_change", args=[1]), {"placeholders": "n/a"})
    placeholder_build = latest_build()
    assert rule_build.pk != placeholder_build.pk
    rule = Rule.objects.get(name="Same position")

    # When a worker ends the later one first
    index.build_run(build_id=placeholder_build.pk)

    # Then the screens still say the index is being rebuilt: the rule's new keys are not there yet
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert BEING_REBUILT in rule_page and BEING_REBUILT in card_list and BEING_REBUILT in queue

    # And once the earlier one is done too, they no longer do
    index.build_run(build_id=rule_build.pk)
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert BEING_REBUILT not in rule_page + card_list + queue
