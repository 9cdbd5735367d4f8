"""Imports as undoable batches: what each file row became (created, updated, skipped, flagged) and why."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DuplicatePolicy(models.TextChoices):
    """What an import does with a row that duplicates a record (Bitrix24's and Salesforce's choice)."""

    SKIP = "skip", _("skip the row")
    UPDATE = "update", _("update the matched record")
    CREATE = "create", _("create it and flag it for review")


class ImportBatch(models.Model):
    """One import of one file: who, how, what it did; undoable as a whole (crm.importing.undo)."""

    class Source(models.TextChoices):
        COMMAND = "command", _("import_csv command")
        ADMIN = "admin", _("admin")

    entity = models.CharField(_("entity"), max_length=20)
    policy = models.CharField(_("duplicates"), max_length=10, choices=DuplicatePolicy.choices)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.COMMAND)
    file_name = models.CharField(_("file"), max_length=255, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    flagged = models.PositiveIntegerField(_("flagged"), default=0)
    # Companies a customers' file created for its company names (no file row of their own).
    companies = models.JSONField(_("companies created"), default=list, blank=True)
    undone_at = models.DateTimeField(_("undone"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("undone by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self):
        return _("Import #%(id)s of %(entity)s") % {"id": self.pk, "entity": self.entity}


class ImportRow(models.Model):
    """What one row of an imported file became, and why (a match, its reasons, the errors)."""

    class Action(models.TextChoices):
        CREATED = "created", _("created")
        FLAGGED = "flagged", _("created, flagged as a possible duplicate")
        UPDATED = "updated", _("updated")
        SKIPPED = "skipped", _("skipped as a duplicate")
        ERROR = "error", _("not imported (error)")

    batch = models.ForeignKey(ImportBatch, verbose_name=_("import"), on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField(_("line"))
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    record_id = models.BigIntegerField(_("record"), null=True, blank=True)
    # The record the row was matched with (a duplicate, or the record its external ID names) and the file line
    # that created it when it came from the same file.
    match_id = models.BigIntegerField(_("matched record"), null=True, blank=True)
    match_line = models.PositiveIntegerField(_("matched line"), null=True, blank=True)
    # Stored texts (dedup.messages): why it matched, or what is wrong with the row.
    reasons = models.JSONField(_("why"), default=list, blank=True)
    # An update's undo data: {"fields": {name: {"before", "after"}}, "added": {model label: [pks]}, "tags": [pks]}
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    class Meta:
        ordering = ["batch", "line", "id"]
        indexes = [models.Index(fields=["batch", "action"], name="crm_importrow_batch_action")]
        verbose_name = _("imported row")
        verbose_name_plural = _("imported rows")

    def __str__(self):
        return _("line %(line)s: %(action)s") % {"line": self.line, "action": self.get_action_display()}
