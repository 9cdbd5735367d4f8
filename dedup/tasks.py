"""Celery tasks of duplicate control: they take ids, call a service and own the retries."""
from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext_lazy as _

from dedup.merge import merge_job_fail, merge_job_run as merge_job_run_service

# A database restart, a lock timeout or a deadlock victim is worth trying again; the job is untouched by a
# failed attempt (its transaction rolled back), so a retry is safe.
MERGE_RETRY_ERRORS = (OperationalError, InterfaceError)
MERGE_MAX_RETRIES = 5


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=MERGE_MAX_RETRIES)
def merge_job_run(self, job_id: int) -> str | None:
    """Run a merge job; delivering it twice (a retry, a worker that died) still merges once."""
    try:
        job = merge_job_run_service(job_id=job_id)
    except MERGE_RETRY_ERRORS as error:
        if self.request.retries >= self.max_retries:
            merge_job_fail(job_id=job_id, reason=_("The database was not available; try again later."))
            raise
        raise self.retry(exc=error, countdown=2 ** self.request.retries) from error
    except Exception:
        merge_job_fail(job_id=job_id, reason=_("An unexpected error stopped the merge; nothing was changed."))
        raise
    return job.status if job is not None else None
