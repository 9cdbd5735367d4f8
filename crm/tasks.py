"""Celery tasks of the CRM."""
from celery import shared_task

from . import selectors


@shared_task(name="crm.health_check")
def health_check() -> dict:
    """Report what a worker sees of the database; proves broker, worker, database and results work."""
    return selectors.record_counts()
