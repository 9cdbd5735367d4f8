"""Services of the automatic scan: start a run, scan its chunks, join them into the review queue, auto-merge.

The scheduled task, the admin's "Run scan now" and `manage.py dedup_scan` all go through `scan_start`,
`scan_plan`, `scan_chunk_process` and `scan_join`; only who runs them differs (Celery workers, or the calling
process with `scan_execute`). runs.py holds that path, queue.py the review queue (upsert, keeping groups
current after merges, dismiss, merge), auto_merge.py the merges trusted rules make on their own.

How the pieces fit, and why:
- A run is one row with status "running"; a unique partial index allows one such row, so a second start is
  refused by the database itself, whichever process tries it. A run whose chunks stopped making progress for
  SCAN_ABANDONED_AFTER (its workers died) is failed by the next start instead of blocking scans forever.
- The run row is committed before anything else, then a task plans it: each entity is split into key ranges
  (`dedup.engine.scan.plan_chunks`); every chunk is a row and a Celery task.
  A chunk's result (its groups) is written to its row as a whole, so a retried chunk replaces its result
  rather than adding a second copy.
- Joining goes through the database, not a Celery chord: the transaction that marks the last chunk done sees
  that no chunk is left (the run row is locked while counting) and the task then sends the join. A chord
  needs its result backend to survive worker deaths and counts each retry; counting rows does not, and a chunk
  message redelivered after its worker died re-sends the join if it is still due. The join is idempotent.
- The join unites the chunks' groups (a record can be in blocks of several chunks) and upserts the queue by a
  stable signature (sha1 of the sorted record ids): the same records found again touch the same open group;
  a group whose records changed is updated in place; open groups not found again are closed.
"""

from .auto_merge import groups_auto_merge
from .errors import ScanAlreadyRunning, ScanError
from .queue import (
    DB_BATCH,
    UpsertOutcome,
    connect,
    dismiss_permission_check,
    group_dismiss,
    group_merge,
    group_signature,
    groups_refresh,
    groups_upsert,
)
from .runs import (
    PLAN_TASK,
    SCAN_ABANDONED_AFTER,
    SCAN_CHUNK_RECORDS,
    SCAN_MAX_CHUNKS,
    SCHEDULED_SCAN_TASK,
    scan_chunk_fail,
    scan_chunk_process,
    scan_chunk_retrying,
    scan_entities,
    scan_execute,
    scan_groups,
    scan_join,
    scan_plan,
    scan_progress,
    scan_request,
    scan_run_fail,
    scan_running,
    scan_start,
    scan_sweep,
)

__all__ = [
    "PLAN_TASK",
    "SCHEDULED_SCAN_TASK",
    "DB_BATCH",
    "SCAN_ABANDONED_AFTER",
    "SCAN_CHUNK_RECORDS",
    "SCAN_MAX_CHUNKS",
    "ScanAlreadyRunning",
    "ScanError",
    "UpsertOutcome",
    "connect",
    "dismiss_permission_check",
    "group_dismiss",
    "group_merge",
    "group_signature",
    "groups_auto_merge",
    "groups_refresh",
    "groups_upsert",
    "scan_chunk_fail",
    "scan_chunk_process",
    "scan_chunk_retrying",
    "scan_entities",
    "scan_execute",
    "scan_groups",
    "scan_join",
    "scan_plan",
    "scan_progress",
    "scan_request",
    "scan_run_fail",
    "scan_running",
    "scan_start",
    "scan_sweep",
]
