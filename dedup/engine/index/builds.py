"""Rebuilds of an entity's index keys in the background, with their progress: a rule that needs new kinds of
keys on a large base, a changed placeholder list or custom field type. Until a rebuild is done the screens that
read the index (the rule's preview, the card's duplicates, the review queue) say so rather than show results
silently incomplete; a rebuild no worker has taken after UNCLAIMED_AFTER says that too.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
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


def build_queue(*, spec: EntitySpec, kinds: Iterable[str] | None, reason: str) -> IndexBuild:
    """Queue a rebuild of these kinds of the entity's keys (None: every kind) after the commit; return its row."""
    build = IndexBuild.objects.create(
        entity=spec.key, reason=reason, kinds=sorted(kinds) if kinds is not None else [],
        total=entity_records_count(spec),
    )

    def failed(error: Exception) -> None:
        IndexBuild.objects.filter(pk=build.pk, status=IndexBuild.Status.QUEUED).update(
            status=IndexBuild.Status.FAILED, finished_at=timezone.now(), error=f"not sent to the workers: {error}"[:2000]
        )

    task_send(BUILD_TASK, args=[build.pk], on_failure=failed)
    return build


def entity_records_count(spec: EntitySpec) -> int:
    manager = spec.model._base_manager
    if spec.archived_attr:
        return manager.filter(**{spec.archived_attr: False}).count()
    return manager.count()


@dataclass(frozen=True)
class BuildState:
    """Where an entity's latest rebuild stands, for the screens."""

    build: IndexBuild
    unclaimed: bool

    @property
    def incomplete(self) -> bool:
        return self.build.status != IndexBuild.Status.DONE

    @property
    def percent(self) -> int:
        if not self.build.total:
            return 0
        return min(100, int(100 * self.build.done / self.build.total))


def build_state(entity: str) -> BuildState | None:
    """Return the state of the entity's latest rebuild when it is not done (waiting, running or failed), else
    None: the index is complete (one query)."""
    build = IndexBuild.objects.filter(entity=entity).order_by("-queued_at", "-id").first()
    if build is None or build.status == IndexBuild.Status.DONE:
        return None
    unclaimed = build.status == IndexBuild.Status.QUEUED and build.queued_at < timezone.now() - UNCLAIMED_AFTER
    return BuildState(build, unclaimed)


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
