"""A rule change on a large base rebuilds the index in the background; until it is done the rule page, its
preview, the card's duplicates and the review queue say so, and a rebuild no worker took says that too."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dedup.engine import index
from dedup.engine.finder import duplicates_of
from dedup.engine.index import builds
from dedup.models import IndexBuild, MatchKey, Rule
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, pks

pytestmark = pytest.mark.django_db

BEING_REBUILT = "The duplicate index is being rebuilt — results may be incomplete"


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def rule_post(admin_client):
    """Add a customer rule on the tax-free field "position" through the admin, as an administrator would."""
    return admin_client.post(
        reverse("admin:dedup_rule_add"),
        {
            "entity": "customer", "name": "Same position", "active": "on", "position": "9",
            "conditions-TOTAL_FORMS": "1", "conditions-INITIAL_FORMS": "0",
            "conditions-MIN_NUM_FORMS": "1", "conditions-MAX_NUM_FORMS": "1000",
            "conditions-0-field": "customer:custom:position", "conditions-0-method": "normalized",
            "conditions-0-position": "0",
        },
    )


def pages(admin_client, rule, customer):
    rule_page = admin_client.get(reverse("admin:dedup_rule_change", args=[rule.pk])).content.decode()
    card_list = admin_client.get(
        reverse("admin:crm_customer_duplicates", args=[customer.pk]), {"fragment": "1"}
    ).content.decode()
    queue = admin_client.get(reverse("admin:dedup_duplicategroup_changelist")).content.decode()
    return rule_page, card_list, queue


def test_index_build_rule_on_a_large_base_says_so_until_done(admin_client, monkeypatch):
    # Given a base larger than what a rule change backfills during the request
    monkeypatch.setattr(index.services, "BACKFILL_INLINE_LIMIT", 1)
    first = customer_with("Ivan", "Petrov", custom_fields={"position": "Chief buyer"})
    second = customer_with("Olga", "Smirnova", custom_fields={"position": "chief  buyer"})

    # When the admin saves a rule needing a new kind of key, and no worker has run the rebuild yet
    response = rule_post(admin_client)
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = Rule.objects.get(name="Same position")
    build = IndexBuild.objects.get(entity="customer")
    assert build.status == IndexBuild.Status.QUEUED and build.total == 2
    assert not MatchKey.objects.filter(kind="custom:position").exists()

    # Then the rule page (its preview too), the card's duplicates and the review queue say the index is incomplete
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert rule_page.count(BEING_REBUILT) == 2  # above the rebuilds and above the preview
    assert "waits for a worker" in rule_page
    assert BEING_REBUILT in card_list
    assert BEING_REBUILT in queue

    # And once it waited long with no worker, they say that
    IndexBuild.objects.filter(pk=build.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    rule_page, card_list, queue = pages(admin_client, rule, first)
    for page in (rule_page, card_list, queue):
        assert "No worker has picked up the rebuild" in page

    # When a worker runs it
    index.build_run(build_id=build.pk)

    # Then its figures are stored, the notices are gone, and the new rule finds the pair
    build.refresh_from_db()
    assert build.status == IndexBuild.Status.DONE and build.done == build.total == 2
    assert build.started_at is not None and build.finished_at >= build.started_at
    rule_page, card_list, queue = pages(admin_client, rule, first)
    assert BEING_REBUILT not in rule_page + card_list + queue
    assert "2 / 2" in rule_page
    assert pks(duplicates_of(first)) == {second.pk}


def test_index_build_progress_is_stored_while_it_runs(monkeypatch):
    # Given 25 customers and a rebuild storing its progress every 10 records, in batches of 10
    monkeypatch.setattr(builds, "PROGRESS_EVERY", 10)
    monkeypatch.setattr(index.services, "PROGRESS_EVERY", 10)
    for number in range(25):
        factories.CustomerFactory(custom_fields={"position": f"p{number}"})
    build = IndexBuild.objects.create(entity="customer", kinds=[], total=0)
    seen = []

    original = index.services.reindex

    def reindex_in_tens(spec, pks, *, progress=None, **options):
        # The real reindex in batches of 10, looking at the stored progress after each batch as a reader would.
        def watch(count):
            progress(count)
            seen.append(IndexBuild.objects.get(pk=build.pk).done)

        return original(spec, pks, progress=watch, **{**options, "batch_size": 10})

    monkeypatch.setattr(index.services, "reindex", reindex_in_tens)
    index.build_run(build_id=build.pk)

    build.refresh_from_db()
    assert build.status == IndexBuild.Status.DONE and build.total == 25 and build.done == 25
    assert any(0 < done < 25 for done in seen)  # a reader saw it part way


def test_index_build_failed_is_said(admin_client):
    customer = factories.CustomerFactory()
    IndexBuild.objects.create(
        entity="customer", status=IndexBuild.Status.FAILED, error="disk full", finished_at=timezone.now()
    )
    card_list = admin_client.get(
        reverse("admin:crm_customer_duplicates", args=[customer.pk]), {"fragment": "1"}
    ).content.decode()
    assert "The rebuild of the duplicate index failed" in card_list
    assert builds.build_state("customer").incomplete
    # A later rebuild that is done makes the index complete again
    IndexBuild.objects.create(entity="customer", status=IndexBuild.Status.DONE, finished_at=timezone.now())
    assert builds.build_state("customer") is None


def test_index_build_not_sent_is_failed_at_once(monkeypatch, django_capture_on_commit_callbacks):
    from celery import current_app
    from kombu.exceptions import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("broker down")

    monkeypatch.setattr(current_app.tasks[builds.BUILD_TASK], "apply_async", refuse)
    from dedup import registry

    with django_capture_on_commit_callbacks(execute=True):
        build = builds.build_queue(spec=registry.get("customer"), kinds=None, reason=IndexBuild.Reason.REBUILD)
    build.refresh_from_db()
    assert build.status == IndexBuild.Status.FAILED and "broker down" in build.error


def test_index_build_large_rebuild_is_split_into_parts_workers_share(monkeypatch, admin_client):
    # Given 25 customers and parts of 10 records
    monkeypatch.setattr(builds, "PART_RECORDS", 10)
    customers = [factories.CustomerFactory(custom_fields={"position": f"p{n % 12}"}) for n in range(25)]
    from dedup import registry

    # When a rebuild is queued (no worker yet)
    first = builds.build_queue(spec=registry.get("customer"), kinds=None, reason=IndexBuild.Reason.REBUILD)

    # Then it is three parts by id range, one rebuild for the screens
    parts = list(IndexBuild.objects.filter(batch=first.pk).order_by("id"))
    assert [(part.first_id, part.last_id) for part in parts] == [
        (customers[0].pk, customers[9].pk), (customers[10].pk, customers[19].pk), (customers[20].pk, None)
    ]
    state = builds.build_state("customer")
    assert state.status == IndexBuild.Status.QUEUED and len(state.parts) == 3

    # When two workers have run a part each
    MatchKey.objects.filter(entity="customer").delete()
    index.build_run(build_id=parts[0].pk)
    index.build_run(build_id=parts[2].pk)

    # Then the rebuild runs on, with the records done so far, and the card says so
    state = builds.build_state("customer")
    assert state.status == IndexBuild.Status.RUNNING and (state.done, state.total) == (15, 25)
    page = admin_client.get(
        reverse("admin:crm_customer_duplicates", args=[customers[0].pk]), {"fragment": "1"}
    ).content.decode()
    assert "15 of 25 records (60%)" in page

    # And once the last part is done, every record has its keys again and the index is complete
    index.build_run(build_id=parts[1].pk)
    assert builds.build_state("customer") is None
    assert set(MatchKey.objects.filter(entity="customer").values_list("record_id", flat=True)) >= {
        customer.pk for customer in customers
    }
