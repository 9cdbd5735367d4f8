"""Stored duplicate figures: each record's duplicates kept current on save, merge, undo, "not a duplicate",
rule change and scan, so list counts and the "Has duplicates" filter are one indexed lookup."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from crm.models import Customer
from dedup import registry, review
from dedup.engine.counts import counts_rebuild, counts_refresh_waiting, stored_counts, with_stored_duplicates
from dedup.engine.figures_messages import INTERACTIVE_DRAIN_BATCHES, LOST_AFTER, refresh_resend_lost
from dedup.engine.finder import duplicate_counts
from dedup.engine.not_duplicates import not_duplicate_clear, not_duplicate_mark
from dedup.engine.scoring.learned import learned_cache_clear
from dedup.merge import merge_undo, records_merge
from dedup.models import DuplicatePair, FiguresPending, FiguresRefreshQueued, MergeJob, Rule
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules


@pytest.fixture(autouse=True)
def default_rules(db):
    ensure_default_rules()


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what the test does as if each step committed: the figures are refreshed on commit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _stored(*records) -> list[int]:
    return [stored_counts(Customer, [r.pk for r in records])[r.pk] for r in records]


def _live(*records) -> list[int]:
    return [duplicate_counts(Customer, [r.pk for r in records])[r.pk] for r in records]


def test_counts_follow_saves_of_records_and_their_phones(committed):
    # given two customers with the same phone
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
        second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    assert _stored(first, second) == [1, 1]
    # when a third one of the same name gets the number too, then everyone has two
    with committed():
        third = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    assert _stored(first, second, third) == [2, 2, 2]
    # when the third's phone changes, both sides of its pairs drop it
    phone = third.phones.get()
    phone.number = "+7 903 000-00-01"
    with committed():
        phone.save()
    assert _stored(first, second, third) == [1, 1, 0]
    # when a record is deleted, its partner's count drops
    with committed():
        second.delete()
    assert _stored(first, third) == [0, 0] == _live(first, third)


def test_counts_are_refreshed_once_the_transaction_commits(django_capture_on_commit_callbacks):
    first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    # nothing is refreshed inside the transaction (a save pays nothing for the figures)...
    assert _stored(first, second) == [0, 0]
    # ...and everything it changed is refreshed when it commits
    for callback in callbacks:
        callback()
    assert _stored(first, second) == [1, 1]


def test_counts_follow_a_phone_becoming_shared_and_a_scan_sees_it_private_again(committed):
    # given two people with one number: duplicates
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
        second = customer_with("Anna", "Sidorova", phones=["8 912 345-67-89"])
    assert _stored(first, second) == [1, 1]
    # when a third person gets it, it is a shared (office) number: nobody is a duplicate by it
    with committed():
        third = customer_with("Olga", "Smirnova", phones=["+79123456789"])
    assert _stored(first, second, third) == [0, 0, 0] == _live(first, third, second)
    # when the third's number changes, the first two are duplicates again: the third's own figures at once,
    # the first two's with the next scan (the known gap of dedup.engine.counts)
    phone = third.phones.get()
    phone.number = "+7 903 000-00-01"
    with committed():
        phone.save()
    assert _stored(third) == [0]
    with committed():
        review.scan_start()
    assert _stored(first, second, third) == [1, 1, 0] == _live(first, second, third)


def test_counts_follow_merge_undo_and_not_duplicate(admin_user, committed):
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
        second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
        third = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    # a merge: the absorbed record is archived (out of the index), the others keep one duplicate each;
    # its undo: all three are duplicates again
    _merge_then_undo(first, second, third, admin_user, committed)
    # "not a duplicate" removes the pair on both sides, forgetting it brings it back
    not_duplicate_mark(entity="customer", pair=(first.pk, third.pk))
    assert _stored(first, second, third) == [1, 2, 1]
    not_duplicate_clear(entity="customer", pair=(first.pk, third.pk))
    assert _stored(first, second, third) == [2, 2, 2]


def _merge_then_undo(first, second, third, admin_user, committed) -> None:
    """Merge the second into the first, then undo it, checking the three records' stored figures after each."""
    with committed():
        result = records_merge(survivor=first, absorbed=[second], user=admin_user)
    assert _stored(first, second, third) == [1, 0, 1]
    job = MergeJob.objects.create(
        entity_key="customer", content_type_id=_ct(), survivor_id=first.pk, absorbed_ids=[second.pk],
        status=MergeJob.Status.DONE, snapshot=result.snapshot, created_by=admin_user,
    )
    with committed():
        merge_undo(job=job, user=admin_user)
    assert _stored(first, second, third) == [2, 2, 2]


def _ct():
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(Customer).pk


def test_counts_follow_a_rule_change(django_capture_on_commit_callbacks):
    # given two customers sharing an email only
    with django_capture_on_commit_callbacks(execute=True):
        first = customer_with("Ivan", "Petrov", emails=["ivan@example.com"])
        second = customer_with("Anna", "Sidorova", emails=["IVAN@example.com"])
    assert _stored(first, second) == [1, 1]
    # when the email rule is switched off (the rebuild runs once the change is committed)
    rule = Rule.objects.get(entity="customer", conditions__field="email")
    with django_capture_on_commit_callbacks(execute=True):
        rule.active = False
        rule.save()
    # then nobody has a duplicate any more, and back on when it is on again
    assert _stored(first, second) == [0, 0]
    with django_capture_on_commit_callbacks(execute=True):
        rule.active = True
        rule.save()
    assert _stored(first, second) == [1, 1]


def test_counts_are_rebuilt_by_a_scan(django_capture_on_commit_callbacks):
    first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    second = customer_with("Anna", "Sidorova", phones=["8 912 345-67-89"])  # figures never refreshed: no commit
    DuplicatePair.objects.all().delete()  # figures lost (a bulk load, a restore)
    assert _stored(first, second) == [0, 0]
    with django_capture_on_commit_callbacks(execute=True):
        review.scan_start()
    assert _stored(first, second) == [1, 1]


def test_a_scan_whose_figures_task_the_broker_refuses_rebuilds_them_itself(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from celery import current_app
    from kombu.exceptions import OperationalError

    from dedup.engine.counts import REBUILD_TASK

    def refuse(*args, **kwargs):
        raise OperationalError("Connection refused")

    first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    second = customer_with("Anna", "Sidorova", phones=["8 912 345-67-89"])
    DuplicatePair.objects.all().delete()
    monkeypatch.setattr(current_app.tasks[REBUILD_TASK], "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        review.scan_start()
    assert _stored(first, second) == [1, 1]
    assert "could not be queued" in caplog.text


def test_counts_stored_figures_equal_the_finder_on_a_mixed_base(committed):
    with committed():
        people = [
            customer_with("Ivan", "Petrov", phones=[f"+7 912 000-00-{n % 4:02d}"], emails=[f"p{n % 3}@example.com"])
            for n in range(12)
        ]
    assert _stored(*people) == _live(*people)
    assert counts_rebuild(entity="customer") == sum(_live(*people))
    assert _stored(*people) == _live(*people)


def test_counts_filter_uses_stored_figures(committed):
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
        second = customer_with("Anna", "Sidorova", phones=["8 912 345-67-89"])
        alone = customer_with("Olga", "Smirnova", phones=["+7 903 000-00-01"])
    assert set(with_stored_duplicates(Customer.objects.all())) == {first, second}
    assert list(with_stored_duplicates(Customer.objects.all(), False)) == [alone]


@pytest.mark.parametrize("has", ["yes", "no"])
def test_counts_filtered_changelist_queries_do_not_grow_with_data(
    admin_client, django_assert_max_num_queries, committed, has
):
    url = reverse("admin:crm_customer_changelist")
    with committed():
        for n in range(4):
            customer_with(f"Name{n}", phones=[f"+7 912 100-00-{n // 2:02d}"])
    admin_client.get(url, {"has_duplicates": has})  # warm caches (content types, rules)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as baseline:
        admin_client.get(url, {"has_duplicates": has})
    with committed():
        for n in range(4, 60):
            customer_with(f"Name{n}", phones=[f"+7 912 100-00-{n // 2:02d}"])
    with django_assert_max_num_queries(len(baseline)):
        response = admin_client.get(url, {"has_duplicates": has})
    assert response.status_code == 200
    if has == "yes":
        assert len(response.context["cl"].result_list) == min(60, response.context["cl"].list_per_page)


def test_counts_follow_merge_undo_and_not_duplicate_of_scored_pairs(admin_user, committed):
    # Given a learned model and a trio found by the score alone (first-name variants at one company, no contacts)
    from tests.dedup.scored_helpers import learn_customers

    learn_customers()
    with committed():
        company = factories.CompanyFactory(name="Acme LLC")
        first = customer_with("Micheal", "Smith", company=company)
        second = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="Acme Inc"))
        third = customer_with("Michael", "Smith", company=factories.CompanyFactory(name="ACME, Inc."))
    assert _stored(first, second, third) == [2, 2, 2]
    # a merge: the absorbed record is archived (out of the index), the others keep one duplicate each;
    # its undo: all three are duplicates again
    _merge_then_undo(first, second, third, admin_user, committed)
    # "not a duplicate" removes the scored pair on both sides
    not_duplicate_mark(entity="customer", pair=(first.pk, third.pk))
    assert _stored(first, second, third) == [1, 2, 1]
    # and the stored figures equal the live finder's
    assert _stored(first, second, third) == _live(first, second, third)
    learned_cache_clear()


@pytest.fixture
def broker_without_worker():
    """Tasks sent to the real broker with no worker to run them (as when the workers are busy); emptied after."""
    from config.celery import app

    app.conf.task_always_eager = False
    app.control.purge()
    yield
    app.control.purge()
    app.conf.task_always_eager = True


def test_counts_of_many_commits_wait_together_and_one_task_refreshes_them(
    committed, broker_without_worker, django_assert_max_num_queries
):
    # given two pairs of duplicates saved in eight commits while no worker runs
    with committed():
        people = [
            customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"]),
            customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"]),
            customer_with("Anna", "Sidorova", phones=["+7 903 111-22-33"]),
            customer_with("Anna", "Sidorova", phones=["8 903 111-22-33"]),
        ]
    # the commits only marked the records as waiting for their figures
    assert _stored(*people) == [0, 0, 0, 0]
    assert sorted(FiguresPending.objects.values_list("record_id", flat=True)) == sorted(p.pk for p in people)

    # when the refresh task runs once
    with django_assert_max_num_queries(22):  # a batch: the same queries for 1 record or 300
        refreshed = counts_refresh_waiting(entity="customer")

    # then it refreshed all of them together, and nothing waits any more
    assert refreshed == 4
    assert _stored(*people) == [1, 1, 1, 1] == _live(*people)
    assert not FiguresPending.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_counts_of_a_rolled_back_transaction_are_not_marked_by_the_next_commit(broker_without_worker):
    # given a customer saved (and committed), its figures' mark cleared as a refresh would
    kept = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    FiguresPending.objects.all().delete()
    # when a change of it is rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        kept.first_name = "Oleg"
        kept.save()
        raise RuntimeError("the request failed")
    # and another customer is saved and committed on the same thread
    other = customer_with("Anna", "Sidorova", phones=["+7 903 111-22-33"])
    # then only the committed change waits for its figures: the rolled-back one left nothing behind
    assert list(FiguresPending.objects.values_list("record_id", flat=True)) == [other.pk]


def test_counts_of_a_record_changed_again_during_its_refresh_wait_for_the_next_task(committed, broker_without_worker):
    # given a waiting record written again after the task began (another commit's row, stamped later)
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
        second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    FiguresPending.objects.filter(record_id=second.pk).update(changed_at=timezone.now() + timedelta(minutes=1))

    # when the task runs
    refreshed = counts_refresh_waiting(entity="customer")

    # then it took the other record (and, as its partner, refreshed both sides), and left the newer row waiting
    assert refreshed == 1
    assert _stored(first, second) == [1, 1]
    assert list(FiguresPending.objects.values_list("record_id", flat=True)) == [second.pk]


def _messages(queue: str) -> int:
    """The messages waiting on a queue of the real broker."""
    from config.celery import app

    with app.connection_for_read() as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


def test_counts_of_many_commits_send_one_refresh_message_while_it_waits(committed, broker_without_worker):
    # given four customers saved in four commits while the refresh message of the first still waits
    people = []
    for first, last, phone in [
        ("Ivan", "Petrov", "+7 912 345-67-89"),
        ("Ivan", "Petrov", "8 912 345-67-89"),
        ("Anna", "Sidorova", "+7 903 111-22-33"),
        ("Anna", "Sidorova", "8 903 111-22-33"),
    ]:
        with committed():
            people.append(customer_with(first, last, phones=[phone]))

    # then one message waits for all four, not four
    assert _messages("figures") == 1
    assert FiguresPending.objects.count() == 4
    assert list(FiguresRefreshQueued.objects.values_list("entity", "queue")) == [("customer", "figures")]

    # when a worker takes that message
    refreshed = counts_refresh_waiting(entity="customer", max_batches=INTERACTIVE_DRAIN_BATCHES, queue="figures")

    # then it refreshed every record, and the figures are the finder's
    assert refreshed == 4
    assert _stored(*people) == [1, 1, 1, 1] == _live(*people)
    assert not FiguresPending.objects.exists() and not FiguresRefreshQueued.objects.exists()
    # and a change committed after it took its message sends a message of its own
    with committed():
        fifth = customer_with("Petr", "Ivanov", phones=["+7 905 000-00-05"])
    assert _messages("figures") == 2
    assert list(FiguresPending.objects.values_list("record_id", flat=True)) == [fifth.pk]


def test_counts_refresh_message_lost_is_sent_again(committed, broker_without_worker):
    # given a record waiting for its figures whose message the broker lost (purged) long ago
    with committed():
        first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    from config.celery import app

    app.control.purge()
    long_ago = timezone.now() - LOST_AFTER - timedelta(minutes=1)
    FiguresPending.objects.update(changed_at=long_ago)
    FiguresRefreshQueued.objects.update(sent_at=long_ago)
    assert _messages("figures") == 0

    # when the sweeper runs, it sends the refresh again, once
    assert refresh_resend_lost() == ["customer"]
    assert refresh_resend_lost() == []
    assert _messages("figures") == 1
    # and the message it sent refreshes the record
    with committed():
        second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    assert _messages("figures") == 1  # the second record waits for the same message
    counts_refresh_waiting(entity="customer", max_batches=INTERACTIVE_DRAIN_BATCHES, queue="figures")
    assert _stored(first, second) == [1, 1]


def test_co_holders_of_a_batch_with_over_a_thousand_keys():
    # Given 600 customers, each pair sharing a phone, each with a phone and two emails of its own (1,200 lookup keys
    # among the 300 asked about: a term per key nested past SQLite's expression depth of 1,000)
    from dedup.engine.counts import co_holders

    ensure_default_rules()
    people = [
        customer_with("Ivan", f"Petrov{n}", phones=[f"+7 912 {n // 2:07d}", f"+7 913 {n:07d}"],
                      emails=[f"p{n}@example.com", f"q{n}@example.com"])
        for n in range(600)
    ]
    # When the co-holders of the even ones are asked for
    found = co_holders(registry.get("customer"), [person.pk for person in people[::2]])
    # Then they are the odd ones, each holding its pair's phone
    assert found == {person.pk for person in people[1::2]}


def _rebuild_in_progress(*, advisory: bool = True):
    """Another session holding what the scan's rebuild of the customers' figures holds until it commits (counts_rebuild:
    the entity's refresh lock, then every stored pair of the entity, deleted to be written afresh)."""
    import psycopg
    from django.db import connection

    from dedup.engine.counts import refresh_lock_id

    params = connection.get_connection_params()
    rebuild = psycopg.connect(
        " ".join(f"{name}={params[name]}" for name in ("host", "port", "user", "password", "dbname") if params.get(name))
    )
    if advisory:
        rebuild.execute("SELECT pg_advisory_xact_lock(%s)", [refresh_lock_id("customer")])
    rebuild.execute(f'DELETE FROM "{DuplicatePair._meta.db_table}" WHERE entity = %s', ["customer"])
    return rebuild


def _waiting_customer():
    """Two customers of one number, the first of them waiting for its figures, and no refresh message sent yet."""
    from config.celery import app

    first = customer_with("Ivan", "Petrov", phones=["+7 912 345-67-89"])
    second = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    app.control.purge()
    FiguresRefreshQueued.objects.all().delete()
    FiguresPending.objects.all().delete()
    FiguresPending.objects.create(entity="customer", record_id=first.pk, changed_at=timezone.now())
    return first, second


@pytest.mark.django_db(transaction=True)
def test_counts_refresh_task_finding_the_figures_rebuilt_leaves_the_records_to_the_rebuild(broker_without_worker):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("another session holding the locks: PostgreSQL")
    # Given two customers of one number, one of them waiting for its figures, while the scan rebuilds the figures
    first, second = _waiting_customer()
    rebuild = _rebuild_in_progress()
    try:
        # When the figures' worker takes a refresh message
        refreshed = counts_refresh_waiting(entity="customer", max_batches=INTERACTIVE_DRAIN_BATCHES, queue="figures")

        # Then it does not wait for the rebuild (its worker stays free for the other entities' refreshes): it
        # refreshed nothing and the record still waits
        assert refreshed == 0
        assert list(FiguresPending.objects.values_list("record_id", flat=True)) == [first.pk]
    finally:
        rebuild.rollback()
        rebuild.close()

    # When a rebuild ends with a record changed while it ran (stamped after it began), it sends that record's refresh
    FiguresPending.objects.update(changed_at=timezone.now() + timedelta(minutes=1))
    counts_rebuild(entity="customer")
    assert _messages("figures") == 1
    assert list(FiguresRefreshQueued.objects.values_list("entity", "queue")) == [("customer", "figures")]
    # and that message refreshes it
    FiguresPending.objects.update(changed_at=timezone.now())
    assert counts_refresh_waiting(entity="customer", max_batches=INTERACTIVE_DRAIN_BATCHES, queue="figures") == 1
    assert _stored(first, second) == [1, 1] == _live(first, second)
    assert not FiguresPending.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_counts_refresh_waiting_longer_than_a_batch_for_a_lock_gives_up(monkeypatch):
    from django.db import OperationalError, connection

    from dedup.engine import counts

    if connection.vendor != "postgresql":
        pytest.skip("another session holding the rows: PostgreSQL")
    monkeypatch.setattr(counts, "REFRESH_LOCK_WAIT", "1s")
    # Given a record waiting for its figures while another session holds the stored pairs (not the refresh lock)
    first, second = _waiting_customer()
    rebuild = _rebuild_in_progress(advisory=False)
    try:
        # When the refresh runs, then it gives up (the task's retry comes back) and the record still waits
        with pytest.raises(OperationalError, match="lock timeout"):
            counts_refresh_waiting(entity="customer")
        assert list(FiguresPending.objects.values_list("record_id", flat=True)) == [first.pk]
    finally:
        rebuild.rollback()
        rebuild.close()
    assert counts_refresh_waiting(entity="customer") == 1
    assert _stored(first, second) == [1, 1] == _live(first, second)
