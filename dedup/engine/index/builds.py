"""Rebuilds of an entity's index keys in the background, with their progress: a rule that needs new kinds of
keys on a large base, a changed placeholder list or custom field type. Until a rebuild is done the screens that
read the index (the rule's preview, the card's duplicates, the review queue) say so rather than show results
silently incomplete; a rebuild no worker has taken after UNCLAIMED_AFTER says that too.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q, Subquery
from django.utils import timezone

from dedup.dispatch import task_send
from dedup.models import IndexBuild
from dedup.registry import EntitySpec

# The Celery task that runs a rebuild (dedup/tasks.py).
BUILD_TASK = "dedup.index_build"
# A rebuild still waiting after this long has no worker to run it: the screens say so.
UNCLAIMED_AFTER = timedelta(minutes=2)
# Progress is stored at most every this many records (one UPDATE each; a million records make 100).
PROGRESS_EVERY = 10_000
# A rebuild of more records than this is split into parts of about this size by id range, one task each, so that
# several workers share it: one process rewrites a few thousand records a second, and the bound is two minutes
# per million (bench/README.md, "Index rebuilds").
PART_RECORDS = 100_000


def build_queue(*, spec: EntitySpec, kinds: Iterable[str] | None, reason: str) -> IndexBuild:
    """Queue a rebuild of these kinds of the entity's keys (None: every kind) after the commit, split into parts
    of PART_RECORDS by id range; return its first part."""
    from .write import all_pks

    total = entity_records_count(spec)
    kinds = sorted(kinds) if kinds is not None else []
    ranges: list[tuple[int | None, int | None, int]] = [(None, None, total)]
    if total > PART_RECORDS:
        # One pass over the ids (an index-only scan): every PART_RECORDS-th id starts a part. Sizes count
        # archived records too (they lose their keys in the rebuild), so they are close, not exact.
        starts = [pk for position, pk in enumerate(all_pks(spec)) if position % PART_RECORDS == 0]
        ranges = [
            (start, (starts[i + 1] - 1) if i + 1 < len(starts) else None, PART_RECORDS)
            for i, start in enumerate(starts)
        ]
        ranges[-1] = (ranges[-1][0], None, max(0, total - PART_RECORDS * (len(starts) - 1)))
    parts = IndexBuild.objects.bulk_create(
        [IndexBuild(entity=spec.key, reason=reason, kinds=kinds, first_id=first, last_id=last, total=size)
         for first, last, size in ranges]
    )
    if len(parts) > 1:
        IndexBuild.objects.filter(pk__in=[part.pk for part in parts]).update(batch=parts[0].pk)
    for part in parts:
        task_send(BUILD_TASK, args=[part.pk], on_failure=lambda error, pk=part.pk: _not_sent(pk, error))
    return parts[0]


def _not_sent(pk: int, error: Exception) -> None:
    IndexBuild.objects.filter(pk=pk, status=IndexBuild.Status.QUEUED).update(
        status=IndexBuild.Status.FAILED, finished_at=timezone.now(), error=f"not sent to the workers: {error}"[:2000]
    )


def part_pks(spec: EntitySpec, build: IndexBuild):
    """Return the ids of the records a part rewrites (its id range), or every id."""
    from .write import all_pks

    if build.first_id is None and build.last_id is None:
        return all_pks(spec)
    queryset = spec.model._base_manager.order_by("pk")
    if build.first_id is not None:
        queryset = queryset.filter(pk__gte=build.first_id)
    if build.last_id is not None:
        queryset = queryset.filter(pk__lte=build.last_id)
    return queryset.values_list("pk", flat=True).iterator(chunk_size=10_000)


def part_records_count(spec: EntitySpec, build: IndexBuild) -> int:
    if build.first_id is None and build.last_id is None:
        return entity_records_count(spec)
    queryset = spec.model._base_manager.all()
    if spec.archived_attr:
        queryset = queryset.filter(**{spec.archived_attr: False})
    if build.first_id is not None:
        queryset = queryset.filter(pk__gte=build.first_id)
    if build.last_id is not None:
        queryset = queryset.filter(pk__lte=build.last_id)
    return queryset.count()


def entity_records_count(spec: EntitySpec) -> int:
    manager = spec.model._base_manager
    if spec.archived_attr:
        return manager.filter(**{spec.archived_attr: False}).count()
    return manager.count()


@dataclass(frozen=True)
class BuildState:
    """Where an entity's latest rebuild stands (all its parts), for the screens."""

    parts: tuple[IndexBuild, ...]
    unclaimed: bool

    @property
    def build(self) -> IndexBuild:
        return self.parts[0]

    @property
    def status(self) -> str:
        statuses = {part.status for part in self.parts}
        for status in (IndexBuild.Status.FAILED, IndexBuild.Status.RUNNING):
            if status in statuses:
                return status
        if statuses == {IndexBuild.Status.DONE}:
            return IndexBuild.Status.DONE
        if IndexBuild.Status.DONE in statuses:
            return IndexBuild.Status.RUNNING  # some parts done, others waiting
        return IndexBuild.Status.QUEUED

    @property
    def incomplete(self) -> bool:
        return self.status != IndexBuild.Status.DONE

    @property
    def done(self) -> int:
        return sum(part.done for part in self.parts)

    @property
    def total(self) -> int:
        return sum(part.total for part in self.parts)

    @property
    def queued_at(self):
        return min(part.queued_at for part in self.parts)

    @property
    def finished_at(self):
        finished = [part.finished_at for part in self.parts if part.finished_at]
        return max(finished) if finished else None

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.done / self.total)) if self.total else 0


def build_state(entity: str) -> BuildState | None:
    """Return the state of the entity's latest rebuild, with any earlier one still waiting or running (a rule
    changed, then the placeholders: the second may end first), when it is not done (waiting, running or
    failed), else None: the index is complete (one query, two for a rebuild in parts)."""
    newest = IndexBuild.objects.filter(entity=entity).order_by("-queued_at", "-id").values("pk")[:1]
    found = list(
        IndexBuild.objects.filter(entity=entity)
        .filter(Q(pk=Subquery(newest)) | Q(status__in=(IndexBuild.Status.QUEUED, IndexBuild.Status.RUNNING)))
        .order_by("-queued_at", "-id")
    )
    if not found:
        return None
    latest = found[0]
    parts = (latest,)
    if latest.batch is not None:
        parts = tuple(IndexBuild.objects.filter(batch=latest.batch).order_by("id"))
    # An earlier rebuild still under way leaves keys missing too (a failed one was superseded by the latest).
    seen = {part.pk for part in parts}
    parts += tuple(build for build in reversed(found[1:]) if build.pk not in seen)
    waiting = [part for part in parts if part.status == IndexBuild.Status.QUEUED]
    unclaimed = bool(waiting) and min(part.queued_at for part in waiting) < timezone.now() - UNCLAIMED_AFTER
    state = BuildState(parts, unclaimed and not any(p.status == IndexBuild.Status.RUNNING for p in parts))
    return state if state.incomplete else None


def recent_builds(entity: str, limit: int = 5) -> list[IndexBuild]:
    return list(IndexBuild.objects.filter(entity=entity).order_by("-queued_at", "-id")[:limit])


def incomplete_states() -> list[BuildState]:
    """Return the states of every entity whose latest rebuild is not done (one query when none is)."""
    states = []
    for entity in sorted(set(IndexBuild.objects.exclude(status=IndexBuild.Status.DONE).values_list("entity", flat=True))):
        state = build_state(entity)
        if state is not None:
            states.append(state)
    return states
