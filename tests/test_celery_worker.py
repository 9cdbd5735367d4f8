"""A real Celery task through a real worker and the configured broker (Redis in CI, filesystem locally)."""
import pytest

from crm.tasks import health_check
from tests.factories import CustomerFactory


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_health_check_runs_through_real_worker(celery_worker):
    # Given two customers committed to the database
    CustomerFactory.create_batch(2)

    # When the task is sent through the broker and a worker runs it
    result = health_check.delay()

    # Then the worker saw the same database
    assert result.get(timeout=30)["customers"] == 2
