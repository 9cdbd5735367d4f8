"""The merge engine: one service merges any registered entity's records; background jobs; undo."""
from .errors import MergeError
from .selectors import merge_history, merged_survivor
from .services import (
    MERGE_PERMISSION,
    MERGE_TASK,
    MergeResult,
    merge_job_create,
    merge_job_fail,
    merge_job_run,
    merge_permission_check,
    merge_undo,
    records_merge,
)

__all__ = [
    "MERGE_PERMISSION",
    "MERGE_TASK",
    "MergeError",
    "MergeResult",
    "merge_history",
    "merge_job_create",
    "merge_job_fail",
    "merge_job_run",
    "merge_permission_check",
    "merge_undo",
    "merged_survivor",
    "records_merge",
]
