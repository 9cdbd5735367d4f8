"""Read the figures the admin index's dashboard draws: duplicates per entity over the scans, merges per day and
per manager, the rules that find the most open groups, and the open review queue. A fixed number of queries."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from dedup import registry
from dedup.messages import rule_name
from dedup.models import DuplicateGroup, MergeJob, Rule, ScanRun

# The scans the "duplicates over time" chart reads (a daily scan: about two months).
SCAN_RUNS_SHOWN = 60
# Days of the "merges per day" chart.
MERGE_DAYS = 30
# Bars of the "per manager" and "top reasons" charts; the rest are left out.
TOP_SHOWN = 8


@dataclass
class Dashboard:
    """What the dashboard shows, as plain figures (the admin draws them)."""

    # {entity label: [(run start, groups found), ...]} oldest first.
    duplicates_over_time: dict[str, list[tuple[object, int]]] = field(default_factory=dict)
    merges_per_day: list[tuple[date, int]] = field(default_factory=list)
    merges_per_manager: list[tuple[str, int]] = field(default_factory=list)
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    # [(entity label, open groups)] and their sum.
    open_queue: list[tuple[str, int]] = field(default_factory=list)
    open_total: int = 0


def _entity_label(key: str) -> str:
    try:
        return str(registry.get(key).label_plural).capitalize()
    except KeyError:
        return key


def dashboard_figures(*, today: date | None = None) -> Dashboard:
    """Return the dashboard's figures, read in five queries whatever the size of the base."""
    today = today or timezone.localdate()
    board = Dashboard()

    runs = list(
        ScanRun.objects.filter(status=ScanRun.Status.DONE)
        .order_by("-started_at", "-id")
        .values_list("started_at", "stats")[:SCAN_RUNS_SHOWN]
    )
    series: dict[str, list[tuple[object, int]]] = defaultdict(list)
    for started_at, stats in reversed(runs):
        for entity, figures in sorted((stats or {}).items()):
            if isinstance(figures, dict) and "groups" in figures:
                series[_entity_label(entity)].append((timezone.localtime(started_at), int(figures["groups"] or 0)))
    board.duplicates_over_time = dict(series)

    first_day = today - timedelta(days=MERGE_DAYS - 1)
    merged = MergeJob.objects.filter(status__in=[MergeJob.Status.DONE, MergeJob.Status.UNDONE])
    per_day = dict(
        merged.filter(created_at__date__gte=first_day)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )
    board.merges_per_day = [
        (first_day + timedelta(days=offset), per_day.get(first_day + timedelta(days=offset), 0))
        for offset in range(MERGE_DAYS)
    ]

    username = get_user_model().USERNAME_FIELD
    per_manager = (
        merged.filter(created_at__date__gte=first_day, created_by__isnull=False)
        .values_list(f"created_by__{username}")
        .annotate(count=Count("id"))
        .order_by("-count")
        .values_list(f"created_by__{username}", "count")[:TOP_SHOWN]
    )
    board.merges_per_manager = [(str(name), count) for name, count in per_manager]

    reasons = (
        Rule.objects.filter(duplicate_groups__status=DuplicateGroup.Status.OPEN)
        .annotate(count=Count("duplicate_groups"))
        .order_by("-count", "position", "id")
        .values_list("entity", "name", "count")[:TOP_SHOWN]
    )
    # Default rules' names in the reader's language (dedup.messages.rule_name).
    board.top_reasons = [(f"{_entity_label(entity)}: {rule_name(name)}", count) for entity, name, count in reasons]

    queue = (
        DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN)
        .values_list("entity")
        .annotate(count=Count("id"))
        .order_by("-count", "entity")
        .values_list("entity", "count")
    )
    board.open_queue = [(_entity_label(entity), count) for entity, count in queue]
    board.open_total = sum(count for _label, count in board.open_queue)
    return board
