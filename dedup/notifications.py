"""Notifications to users (a merge finished or failed): send, list the unread, mark read."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from dedup.messages import Message
from dedup.models import Notification


def message_stored(message) -> dict | None:
    return message.data if isinstance(message, Message) else None

# At most this many notifications per poll: a user back from a holiday gets the newest, not a wall of toasts.
POLL_LIMIT = 20


@transaction.atomic
def notification_send(
    *, user, message: str, level: str = Notification.Level.INFO, url: str = "", job=None
) -> Notification:
    """Store a notification for a user; their admin pages show it as a toast on the next poll."""
    if level not in Notification.Level.values:
        raise ValueError(f"Unknown notification level {level!r}")
    return Notification.objects.create(
        user=user, level=level, message=str(message), body=message_stored(message) or None, url=url or "", job=job
    )


def notifications_unread(user, *, after_id: int = 0) -> QuerySet[Notification]:
    """Return the user's unread notifications newer than ``after_id``, newest first."""
    queryset = Notification.objects.filter(user=user, read_at__isnull=True)
    if after_id:
        queryset = queryset.filter(pk__gt=after_id)
    return queryset.order_by("-id")


@transaction.atomic
def notifications_mark_read(*, user, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications read (these ids, or all); return how many were unread."""
    queryset = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    return queryset.update(read_at=timezone.now())


@transaction.atomic
def notifications_mark_popped(*, user, ids: Iterable[int]) -> list[int]:
    """Note that the user's notifications popped up as toasts; return the ids not noted before (the caller's to
    show). Kept on the server, so a second browser or device does not pop them again."""
    queryset = Notification.objects.filter(user=user, pk__in=list(ids), popped_at__isnull=True)
    fresh = list(queryset.select_for_update().values_list("pk", flat=True))
    if fresh:
        Notification.objects.filter(pk__in=fresh, popped_at__isnull=True).update(popped_at=timezone.now())
    return fresh


def notification_payload(notification: Notification) -> dict:
    """Return a notification as the toast script reads it; with its merge, so an open card can keep up."""
    job = notification.job
    return {
        "id": notification.pk,
        "level": notification.level,
        "message": notification.text,
        "url": notification.url,
        "created_at": notification.created_at.isoformat(),
        # Popped up as a toast already (in this or another browser): it lives in the list only.
        "popped": notification.popped_at is not None,
        "job": None
        if job is None
        else {
            "id": job.pk,
            "status": job.status,
            "content_type": job.content_type_id,
            "survivor": job.survivor_id,
            "absorbed": list(job.absorbed_ids or []),
        },
    }
