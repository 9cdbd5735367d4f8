"""The merge engine: one service merges any registered entity's records; background jobs; undo.

checks.py (who may merge what, are the records as the user saw them) → services.py (records_merge, the merge
itself) → jobs.py (queue, run once, fail with a stored reason, notify) → undo.py (restore the snapshot, now or
as a job) → sweep.py (end the jobs whose worker died). fields.py and relations.py move the data.
"""
from .checks import MERGE_PERMISSION, merge_permission_check, related_permission_check
from .errors import MergeError
from .jobs import MERGE_TASK, PENDING_STATUSES, UNDO_TASK, merge_job_create, merge_job_fail, merge_job_run
from .selectors import merge_history, merged_survivor, record_stamp, record_state
from .services import MergeResult, records_merge
from .sweep import merge_jobs_sweep
from .undo import merge_undo, merge_undo_fail, merge_undo_request, merge_undo_run

__all__ = [
    "MERGE_PERMISSION",
    "MERGE_TASK",
    "PENDING_STATUSES",
    "UNDO_TASK",
    "MergeError",
    "MergeResult",
    "merge_history",
    "merge_job_create",
    "merge_job_fail",
    "merge_job_run",
    "merge_jobs_sweep",
    "merge_permission_check",
    "merge_undo",
    "merge_undo_fail",
    "merge_undo_request",
    "merge_undo_run",
    "merged_survivor",
    "record_stamp",
    "record_state",
    "records_merge",
    "related_permission_check",
]
