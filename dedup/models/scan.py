"""The automatic scan: runs split into chunks, and the review queue of duplicate groups they found."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ScanRun(models.Model):
    """One scan of every entity with active rules, from the schedule, the admin or the command line."""

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("schedule")
        ADMIN = "admin", _("run now (admin)")
        COMMAND = "command", _("command line")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(_("started by"), max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    entities = models.JSONField(_("entities"), default=list, help_text=_("Keys of the entities this run scans."))
    started_at = models.DateTimeField(_("started"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Touched by every chunk; a running scan whose heartbeat is this old is considered abandoned (its
    # workers died) so that the next scan can start instead of being refused forever.
    heartbeat_at = models.DateTimeField(_("last progress"), default=timezone.now)
    # Per entity: {"records": N, "groups": N, "new": N, "closed": N, "auto_merged": N, "seconds": S}.
    stats = models.JSONField(_("figures"), default=dict, blank=True)
    failure_reason = models.TextField(_("failure reason"), blank=True, default="")
    # The reason as a message id with parameters (dedup.messages), shown in the reader's language.
    failure_data = models.JSONField(_("failure data"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("scan run")
        verbose_name_plural = _("scan runs")
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one scan runs at a time: a second start fails on this index in the database itself,
            # whichever process (beat, admin, command line, another worker) tries it.
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="dedup_scanrun_one_running"
            ),
        ]

    def __str__(self):
        return _("Scan #%(id)s of %(started)s") % {
            "id": self.pk,
            "started": timezone.localtime(self.started_at).strftime("%Y-%m-%d %H:%M"),
        }

    @property
    def failure_text(self) -> str:
        """Why the scan failed, in the reader's language."""
        from dedup.messages import text_of

        return text_of(self.failure_data, self.failure_reason)

    @property
    def seconds(self) -> float | None:
        end = self.finished_at or (timezone.now() if self.status == self.Status.RUNNING else None)
        return round((end - self.started_at).total_seconds(), 1) if end else None


class ScanChunk(models.Model):
    """A slice of one entity's match keys (a key range) that one worker scans."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    run = models.ForeignKey(ScanRun, verbose_name=_("scan run"), on_delete=models.CASCADE, related_name="chunks")
    entity = models.CharField(_("entity"), max_length=32)
    index = models.PositiveIntegerField(_("number"))
    # The key range handed to the finder, as the finder's own chunk value (JSON).
    key_range = models.JSONField(_("key range"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # The groups this chunk found, {"groups": [[ids], [reasons], [rule ids]], ...], "trusted": [...], "records":
    # [[id, owner id, last change], ...]} (trusted: those the auto-merge rules find by themselves; records: what
    # the queue shows of the records found). Replaced as a whole on every attempt, so a retried chunk never adds
    # a second copy of its results.
    result = models.JSONField(_("result"), default=dict, blank=True)
    groups_found = models.PositiveIntegerField(_("groups found"), default=0)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    error_data = models.JSONField(_("error data"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("scan chunk")
        verbose_name_plural = _("scan chunks")
        ordering = ["run", "entity", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "entity", "index"], name="dedup_scanchunk_run_entity_index_unique"),
        ]

    def __str__(self):
        return f"{self.entity} #{self.index}"

    @property
    def error_text(self) -> str:
        from dedup.messages import text_of

        return text_of(self.error_data, self.error)


class DuplicateGroup(models.Model):
    """Records of one entity that a scan found to be the same; an item of the review queue."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        MERGED = "merged", _("merged")
        DISMISSED = "dismissed", _("dismissed")
        CLOSED = "closed", _("closed (no longer matches)")

    entity = models.CharField(_("entity"), max_length=32, db_index=True)
    # sha1 of the sorted member ids: the same records found again are the same group, never a new copy.
    signature = models.CharField(_("signature"), max_length=40)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    size = models.PositiveIntegerField(_("size"), default=0)
    reasons = models.JSONField(_("reasons"), default=list, blank=True)
    rules = models.ManyToManyField("dedup.Rule", verbose_name=_("rules"), blank=True, related_name="duplicate_groups")
    newest_activity = models.DateTimeField(
        _("newest activity"), null=True, blank=True, db_index=True, help_text=_("When a member was last changed.")
    )
    first_run = models.ForeignKey(
        ScanRun, verbose_name=_("found by"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when a scan creates or changes the group; an open group is, by definition, in the latest scan's results.
    last_run = models.ForeignKey(
        ScanRun, verbose_name=_("last changed by"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("found"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    resolution = models.CharField(_("resolution"), max_length=255, blank=True, default="")
    resolution_data = models.JSONField(_("resolution data"), null=True, blank=True, editable=False)
    # The background merge that resolved (or is resolving) the group; kept as an id so the queue does not
    # depend on the merge models' schema.
    merge_job_id = models.BigIntegerField(_("merge job"), null=True, blank=True)
    auto_merged = models.BooleanField(_("merged automatically"), default=False)

    class Meta:
        verbose_name = _("duplicate group")
        verbose_name_plural = _("duplicate groups")
        ordering = ["-newest_activity", "-id"]
        constraints = [
            # Idempotent upserts: one open group per set of records, however often a join is retried.
            models.UniqueConstraint(
                fields=["entity", "signature"], condition=Q(status="open"), name="dedup_group_open_signature_unique"
            ),
        ]
        indexes = [models.Index(fields=["entity", "status"], name="dedup_group_entity_status_idx")]

    @property
    def resolution_text(self) -> str:
        """How the group was resolved, in the reader's language."""
        from dedup.messages import text_of

        return text_of(self.resolution_data, self.resolution)

    def __str__(self):
        return _("%(entity)s group #%(id)s (%(size)s records)") % {
            "entity": self.entity,
            "id": self.pk,
            "size": self.size,
        }


class DuplicateGroupMember(models.Model):
    """One record of a duplicate group, with its responsible manager at the time of the scan."""

    # No index of its own: the unique (group, record_id) index starts with it and serves its lookups.
    group = models.ForeignKey(
        DuplicateGroup, verbose_name=_("group"), on_delete=models.CASCADE, related_name="members", db_index=False
    )
    record_id = models.BigIntegerField(_("record ID"), db_index=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("responsible manager"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("group member")
        verbose_name_plural = _("group members")
        ordering = ["group", "record_id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "record_id"], name="dedup_groupmember_group_record_unique"),
        ]

    def __str__(self):
        return f"{self.group.entity} #{self.record_id}"
