"""The merge engine: one service merges any registered entity's records; background jobs; undo."""
from .errors import MergeError
from .selectors import merge_history, merged_survivor, record_state
from .services import (
    MERGE_PERMISSION,
    MERGE_TASK,
    PENDING_STATUSES,
    UNDO_TASK,
    MergeResult,
    merge_job_create,
    merge_job_fail,
    merge_job_run,
    merge_jobs_sweep,
    merge_permission_check,
    merge_undo,
    merge_undo_fail,
    merge_undo_request,
    merge_undo_run,
    records_merge,
    related_permission_check,
)

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
    "record_state",
    "records_merge",
    "related_permission_check",
]
