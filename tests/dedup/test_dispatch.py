"""Sending tasks by name after the commit: a broker that refuses the message never fails a committed change."""
import pytest
from celery import current_app
from kombu.exceptions import OperationalError

from dedup.dispatch import task_send
from dedup.engine.index import BACKFILL_TASK


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(current_app.tasks[BACKFILL_TASK], "apply_async", refuse)


@pytest.mark.django_db(transaction=True)
def test_task_send_broker_down_without_handler_logs_and_returns(broker_down, caplog):
    task_send(BACKFILL_TASK, args=["customer", ["phone"]])  # outside a transaction: sent at once
    assert "Could not send the task dedup.index_backfill" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_task_send_broker_down_calls_the_handler(broker_down):
    failures = []
    task_send(BACKFILL_TASK, args=["customer", ["phone"]], on_failure=failures.append)
    assert len(failures) == 1 and isinstance(failures[0], OperationalError)


@pytest.mark.django_db(transaction=True)
def test_task_send_eager_task_failure_surfaces(monkeypatch):
    def fail(*args, **kwargs):
        raise ValueError("the task itself failed")

    monkeypatch.setattr(current_app.tasks[BACKFILL_TASK], "apply_async", fail)
    with pytest.raises(ValueError):
        task_send(BACKFILL_TASK, args=["customer", ["phone"]])
