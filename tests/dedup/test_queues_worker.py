"""Merges never wait behind a scan or behind the figures: the "interactive", "figures" and "bulk" queues through
real Celery workers and the configured broker (Redis in CI, files locally)."""
import time

import pytest
from django.db import OperationalError, close_old_connections, connection

from config.celery import app
from crm.models import Customer
from dedup import review, tasks
from dedup.engine.counts import stored_counts
from dedup.engine.figures_messages import INTERACTIVE_DRAIN_BATCHES
from dedup.engine.finder import duplicate_counts
from dedup.merge import merge_job_create
from dedup.models import DuplicatePair, FiguresPending, MergeJob, ScanChunk, ScanRun
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules
from tests.workers import tasks_through_the_broker, worker_threads

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TIMEOUT = 90
# Customers per chunk and pairs of duplicates: a scan of 20 chunks, each a task of its own on the bulk queue (a
# chunk needs 10 keys at least, rules.plan_chunks).
CHUNK_RECORDS = 6
PAIRS = 60


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()  # a transactional test flushes what the migrations wrote


def _pairs(count: int) -> list[tuple[Customer, Customer]]:
    """Pairs of customers with one name and one number (saved eagerly: their figures are refreshed as they are)."""
    found = []
    for index in range(count):
        phone = f"+7 912 {index:03d}-45-67"
        found.append(
            (customer_with("Ivan", f"Petrov{index}", phones=[phone]),
             customer_with("Ivan", f"Petrov{index}", phones=[phone.replace("+7", "8")]))
        )
    return found


def _poll(read, done, what: str):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            value = read()
            if done(value):
                return value
        except OperationalError:  # SQLite: a worker holds the write lock for a moment
            close_old_connections()
        time.sleep(0.05)
    raise AssertionError(f"{what} within {TIMEOUT} s")


def _scan_queued(settings) -> tuple[ScanRun, list[int]]:
    """Plan a scan of many chunks and send them, as its plan task does: the bulk queue holds them all, as it holds
    a big base's chunks for minutes while its workers are busy with the first ones."""
    settings.DEDUP_SCAN_CHUNK_RECORDS = CHUNK_RECORDS
    run = review.scan_start(entities=["customer"], dispatch=False)
    chunk_ids = list(run.chunks.order_by("index").values_list("pk", flat=True))
    assert len(chunk_ids) >= 10
    for chunk_id in chunk_ids:
        tasks.scan_chunk.delay(chunk_id)
    return run, chunk_ids


def _wait_for_merge(job: MergeJob) -> MergeJob:
    return _poll(
        lambda: MergeJob.objects.get(pk=job.pk),
        lambda current: current.status in (MergeJob.Status.DONE, MergeJob.Status.FAILED),
        "the merge was not done",
    )


def _wait_for_scan(run: ScanRun) -> ScanRun:
    return _poll(
        lambda: ScanRun.objects.get(pk=run.pk), lambda current: current.status != ScanRun.Status.RUNNING,
        "the scan did not finish",
    )


def test_merge_runs_on_its_own_worker_while_the_scan_fills_the_bulk_queue(settings):
    # Given duplicates and, as in production, a scan's chunks filling the bulk queue (its workers all busy)
    people, manager = _pairs(PAIRS), _manager()
    survivor, absorbed = people[-1]
    with tasks_through_the_broker():
        run, chunk_ids = _scan_queued(settings)

        # When a manager merges two customers, and the interactive queue's own worker runs
        job = merge_job_create(user=manager, survivor=survivor, absorbed=[absorbed])
        with worker_threads(["interactive"]):
            job = _wait_for_merge(job)

        # Then the merge is done while not one chunk of the scan has run (it no longer waits behind them)
        assert job.status == MergeJob.Status.DONE, job.error
        absorbed.refresh_from_db()
        assert absorbed.merged_into_id == survivor.pk
        assert not ScanChunk.objects.filter(pk__in=chunk_ids, status=ScanChunk.Status.DONE).exists()
        # and the bulk queue's worker, once free, scans to the end
        with worker_threads(["bulk"]):
            finished = _wait_for_scan(run)
        assert finished.status == ScanRun.Status.DONE, finished.failure_reason


def test_one_worker_on_both_queues_takes_a_merge_between_two_chunks(settings):
    # Given duplicates and a scan's chunks queued, then a merge queued behind them
    people, manager = _pairs(PAIRS), _manager()
    survivor, absorbed = people[-1]
    with tasks_through_the_broker():
        run, chunk_ids = _scan_queued(settings)
        job = merge_job_create(user=manager, survivor=survivor, absorbed=[absorbed])

        # When the embedded default's one worker, consuming both queues, runs
        with worker_threads(["interactive", "bulk"]):
            job = _wait_for_merge(job)
            finished = _wait_for_scan(run)

    # Then it took the merge in turn with the chunks (the queues are served in turn), not after the whole scan
    assert job.status == MergeJob.Status.DONE, job.error
    assert finished.status == ScanRun.Status.DONE, finished.failure_reason
    chunks_after = ScanChunk.objects.filter(pk__in=chunk_ids, finished_at__gt=job.finished_at).count()
    assert chunks_after >= len(chunk_ids) - 2


def test_figures_are_refreshed_by_the_figures_worker_after_the_commit():
    # Given two customers of the same name and number saved while no worker runs
    with tasks_through_the_broker():
        first = customer_with("Anna", "Sidorova", phones=["+7 912 111-22-33"])
        second = customer_with("Anna", "Sidorova", phones=["8 912 111-22-33"])
        # the saves committed without refreshing the figures themselves: that is a task on the figures queue
        assert stored_counts(Customer, [first.pk, second.pk]) == {first.pk: 0, second.pk: 0}

        # When a worker of the figures queue runs
        with worker_threads(["figures"]):
            figures = _poll(
                lambda: stored_counts(Customer, [first.pk, second.pk]),
                lambda counts: counts == {first.pk: 1, second.pk: 1},
                "the figures were not refreshed",
            )

    # Then the pair is stored on both sides, as the finder sees it
    assert figures == {first.pk: 1, second.pk: 1}
    assert duplicate_counts(Customer, [first.pk, second.pk]) == figures


def _messages(queue: str) -> int:
    """The messages waiting on a queue of the real broker (every priority)."""
    with app.connection_for_read() as broker:
        return broker.default_channel.queue_declare(queue=queue).message_count


# A burst of intake posts and saves: refresh messages waiting when a manager clicks "Merge".
REFRESH_BACKLOG = 40


def test_merge_queued_after_a_backlog_of_refreshes_is_done_by_the_interactive_worker():
    # Given pairs of duplicates, a backlog of refresh messages, and then a manager's merge queued behind them
    people, manager = _pairs(3), _manager()
    survivor, absorbed = people[0]
    with tasks_through_the_broker():
        for _index in range(REFRESH_BACKLOG):
            tasks.duplicate_counts_refresh.apply_async(args=["customer", INTERACTIVE_DRAIN_BATCHES, "figures"])
        job = merge_job_create(user=manager, survivor=survivor, absorbed=[absorbed])

        # When the interactive queue's worker runs, as Procfile.prod starts it
        with worker_threads(["interactive"]):
            job = _wait_for_merge(job)

        # Then the merge is done, and its worker took not one refresh: they all wait for the figures' worker (the
        # merged records among them)
        assert job.status == MergeJob.Status.DONE, job.error
        _poll(lambda: FiguresPending.objects.filter(record_id__in=[survivor.pk, absorbed.pk]).count(),
              lambda marked: marked == 2, "the merged records were not left waiting")  # after its commit's callback
        assert _messages("figures") >= REFRESH_BACKLOG
        # and that worker, once running, takes them and stores the figures the finder finds
        with worker_threads(["figures"]):
            _poll(lambda: FiguresPending.objects.exists(), lambda waiting: not waiting, "the refreshes did not run")
    others = [record.pk for pair in people[1:] for record in pair]
    assert stored_counts(Customer, [survivor.pk, *others]) == duplicate_counts(Customer, [survivor.pk, *others])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks held by another transaction: PostgreSQL")
def test_merge_is_done_while_a_refresh_waits_for_the_figures_rebuild():
    import psycopg

    from dedup.engine.counts import refresh_lock_id

    # Given duplicates whose stored figures are being rebuilt, as the scan's rebuild holds them: the refresh lock and
    # every stored pair of the entity, until it commits (80 s at 1,000,000 customers)
    people, manager = _pairs(3), _manager()
    survivor, absorbed = people[0]
    params = connection.get_connection_params()
    rebuild = psycopg.connect(
        " ".join(f"{name}={params[name]}" for name in ("host", "port", "user", "password", "dbname") if params.get(name))
    )
    try:
        rebuild.execute("SELECT pg_advisory_xact_lock(%s)", [refresh_lock_id("customer")])
        rebuild.execute(f'DELETE FROM "{DuplicatePair._meta.db_table}" WHERE entity = %s', ["customer"])
        with tasks_through_the_broker(), worker_threads(["interactive"], ["figures"]):
            try:
                # and a refresh of the figures sent meanwhile (a save)
                customer_with("Ivan", "Petrov0", phones=["+7 912 000-45-67"])

                # When a manager merges two customers
                job = _wait_for_merge(merge_job_create(user=manager, survivor=survivor, absorbed=[absorbed]))

                # Then the merge is done while the figures could not be (the figures' worker is not the merges')
                assert job.status == MergeJob.Status.DONE, job.error
                # (the merged records marked as waiting once its commit's callback has run)
                _poll(lambda: FiguresPending.objects.filter(record_id__in=[survivor.pk, absorbed.pk]).count(),
                      lambda marked: marked == 2, "the merged records were not left waiting")
            finally:
                rebuild.rollback()  # the rebuild ends (and a worker stopped early is not left waiting)
            # and once the rebuild is over, the next change's refresh takes every record left waiting
            customer_with("Ivan", "Petrov1", phones=["+7 912 001-45-67"])
            _poll(lambda: FiguresPending.objects.exists(), lambda waiting: not waiting, "the refreshes did not run")
    finally:
        rebuild.close()
    others = [record.pk for pair in people[1:] for record in pair]
    assert stored_counts(Customer, [survivor.pk, *others]) == duplicate_counts(Customer, [survivor.pk, *others])


def _manager():
    return factories.UserFactory(username="merger", is_superuser=True, is_staff=True)
