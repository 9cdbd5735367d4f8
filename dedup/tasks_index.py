"""Celery tasks of the match-key index: backfill the keys a new rule needs, off the admin's request."""
from celery import shared_task
from django.db import InterfaceError, OperationalError

# A backfill is idempotent (it replaces the kinds it writes), so a retry after a lost connection is safe.
BACKFILL_MAX_RETRIES = 5


@shared_task(
    name="dedup.index_backfill",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=BACKFILL_MAX_RETRIES,
)
def index_backfill(entity_key: str, kinds: list[str]) -> int:
    """Write the given kinds of keys for every record of the entity; return the rows written."""
    from dedup import index, registry

    spec = registry.get(entity_key)
    wanted = set(kinds) & index.indexed_kinds(spec)  # a rule removed meanwhile needs them no more
    return index.backfill(spec, wanted) if wanted else 0
