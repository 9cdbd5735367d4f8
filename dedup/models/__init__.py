"""Duplicate control's models: rules and the match-key index (rules.py), merge jobs and notifications (merge.py),
scan runs and the review queue (scan.py), learned scoring weights (scoring.py),
placeholders, custom field types and index rebuilds (settings.py)."""
from .merge import MergeJob, MergeJobRecord, Notification  # noqa: F401
from .rules import (  # noqa: F401
    Condition,
    DuplicatePair,
    FiguresPending,
    FiguresRefreshQueued,
    IndexedKind,
    MatchKey,
    NotDuplicate,
    Rule,
)
from .scan import DuplicateGroup, DuplicateGroupMember, ScanChunk, ScanRun  # noqa: F401
from .scoring import ScoringModel, ScoringWeight  # noqa: F401
from .settings import CustomFieldType, IndexBuild, MatchSettings  # noqa: F401
