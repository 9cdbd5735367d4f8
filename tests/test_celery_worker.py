"""A real Celery task through a real worker and the configured broker (Redis in CI, filesystem locally)."""
import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app
from crm.tasks import health_check
from tests.factories import CustomerFactory


@pytest.fixture
def celery_worker():
    """A worker thread consuming from the real broker; tasks are not eager while it runs."""
    app.conf.task_always_eager = False
    # Messages an earlier test left on the broker (sent while no worker ran) would run against this test's
    # database: the queue starts empty.
    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker
    app.conf.task_always_eager = True


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_health_check_runs_through_real_worker(celery_worker):
    # Given two customers committed to the database
    CustomerFactory.create_batch(2)

    # When the task is sent through the broker and a worker runs it
    result = health_check.delay()

    # Then the worker saw the same database
    assert result.get(timeout=30)["customers"] == 2
