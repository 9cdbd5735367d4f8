"""Merge jobs (what was merged, by whom, and what undo needs) and the notifications users get about them."""
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MergeJob(models.Model):
    """One merge a user asked for, run in the background by a Celery task; its snapshot makes it undoable."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")
        UNDOING = "undoing", _("being undone")
        UNDONE = "undone", _("undone")

    entity_key = models.CharField(_("entity"), max_length=32, db_index=True)
    content_type = models.ForeignKey(
        ContentType, verbose_name=_("record type"), on_delete=models.PROTECT, related_name="+"
    )
    survivor_id = models.PositiveBigIntegerField(_("priority record"))
    # In the order the user gave them: empty fields of the survivor are filled from the first that has a value.
    absorbed_ids = models.JSONField(_("merged records"), default=list)
    # {field name: record id} the user picked on the compare screen.
    choices = models.JSONField(_("field choices"), default=dict, blank=True)
    # Records the manager unticked from this merge: the merge stores them as "not a duplicate" of the merged
    # records when it runs (and its undo forgets those pairs again), never before the manager confirms.
    left_out_ids = models.JSONField(_("records left out"), default=list, blank=True)
    # {record id: updated_at (ISO)} as the compare screen showed them; a record changed since fails the job.
    expected = models.JSONField(_("versions seen"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merge_jobs",
    )
    # The requester's language: the worker writes the merge note and the notification in it.
    language = models.CharField(_("language"), max_length=16, blank=True, default="")
    created_at = models.DateTimeField(_("requested"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(_("error"), blank=True, default="")
    # Why it failed as a message id with parameters (dedup.messages), shown in the reader's language; ``error``
    # keeps the text as written (all that jobs older than the message ids have).
    error_data = models.JSONField(_("error data"), null=True, blank=True, editable=False)
    # Everything undo needs: field values before and after, the ids of every moved row per relation, the rows
    # removed as duplicates, the flags cleared and the merge note.
    snapshot = models.JSONField(_("snapshot"), default=dict, blank=True)
    celery_task_id = models.CharField(_("task ID"), max_length=64, blank=True, default="")
    # When an undo was asked for: the sweeper ends an undo whose worker died a while after this.
    undo_requested_at = models.DateTimeField(_("undo requested"), null=True, blank=True)
    undone_at = models.DateTimeField(_("undone"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("undone by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("merge")
        verbose_name_plural = _("merges")
        ordering = ["-created_at", "-id"]
        permissions = [("merge_records", _("Can merge duplicate records"))]
        indexes = [models.Index(fields=["content_type", "survivor_id"], name="mergejob_survivor_idx")]

    def __str__(self):
        return _("Merge #%(id)s") % {"id": self.pk}

    @property
    def error_text(self) -> str:
        """Why the merge failed, in the reader's language."""
        from dedup.messages import text_of

        return text_of(self.error_data, self.error)


class MergeJobRecord(models.Model):
    """A record taking part in a merge job, so a record's merge history is one indexed query."""

    class Role(models.TextChoices):
        SURVIVOR = "survivor", _("priority record")
        ABSORBED = "absorbed", _("merged record")

    job = models.ForeignKey(MergeJob, verbose_name=_("merge"), on_delete=models.CASCADE, related_name="records")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    record_id = models.PositiveBigIntegerField(_("record"))
    role = models.CharField(_("role"), max_length=8, choices=Role.choices)

    class Meta:
        verbose_name = _("merged record")
        verbose_name_plural = _("merged records")
        indexes = [models.Index(fields=["content_type", "record_id"], name="mergejobrecord_record_idx")]
        constraints = [
            models.UniqueConstraint(fields=["job", "record_id"], name="mergejobrecord_once_per_job"),
        ]

    def __str__(self):
        return f"{self.get_role_display()} #{self.record_id}"


class Notification(models.Model):
    """A message to one user: shown as a toast on whatever admin page they are on, kept until read."""

    class Level(models.TextChoices):
        INFO = "info", _("information")
        SUCCESS = "success", _("success")
        WARNING = "warning", _("warning")
        ERROR = "error", _("error")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="dedup_notifications"
    )
    level = models.CharField(_("level"), max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField(_("message"))
    # The message as its id and parameters (dedup.messages), rendered in the reader's language; ``message``
    # keeps the text as sent (and is all older notifications have).
    body = models.JSONField(_("message data"), null=True, blank=True)
    url = models.CharField(_("link"), max_length=500, blank=True, default="")
    job = models.ForeignKey(
        MergeJob,
        verbose_name=_("merge"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    # When it popped up as a toast (on any of the user's browsers): from then on it lives only in the list.
    popped_at = models.DateTimeField(_("shown"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "id"], name="notification_unread_idx")]

    def __str__(self):
        return self.text[:80]

    @property
    def text(self) -> str:
        """The message in the reader's language."""
        from dedup.messages import render

        return render(self.body) if self.body else self.message

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
