"""What the administrator tells duplicate control about values: placeholders that mean "not filled in", the
types of custom fields, and the rebuilds of the index such changes (and rule changes) set off."""
from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class MatchSettings(models.Model):
    """The one row of value settings (pk 1): the placeholder list, and a version bumped by every change of it or
    of a custom field's type, which every process checks through the index's stored kinds (see
    dedup.engine.match_settings)."""

    placeholders = models.TextField(
        _("placeholder values"),
        blank=True,
        default="",
        help_text=_(
            "One per line, compared case-insensitively: values that mean \"not filled in\" (nan, n/a, -, 0000000) "
            "are treated as missing and never match. End a line with * to match every value that starts so "
            "(noemail@*)."
        ),
    )
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("value settings")
        verbose_name_plural = _("value settings")

    def __str__(self):
        return str(_("Placeholder values and custom field types"))


class CustomFieldType(models.Model):
    """The type of one custom field of one entity: how its values are normalised and compared."""

    class Type(models.TextChoices):
        TEXT = "text", _("text")
        PERSON_NAME = "person_name", _("person name")
        COMPANY_NAME = "company_name", _("company name")
        DATE = "date", _("date")
        NUMBER = "number", _("number")
        IDENTIFIER = "identifier", _("identifier")
        PHONE = "phone", _("phone")
        EMAIL = "email", _("email")
        ADDRESS = "address", _("address")

    entity = models.CharField(_("records"), max_length=32)
    key = models.CharField(
        _("custom field"), max_length=100, help_text=_("The key of the custom field, as stored (e.g. country).")
    )
    type = models.CharField(_("type"), max_length=16, choices=Type.choices, default=Type.TEXT)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("custom field type")
        verbose_name_plural = _("custom field types")
        ordering = ["entity", "key"]
        constraints = [models.UniqueConstraint(fields=["entity", "key"], name="dedup_customfieldtype_unique")]

    def __str__(self):
        return f"{self.entity}: {self.key} ({self.get_type_display()})"


class IndexBuild(models.Model):
    """A rebuild of some kinds of an entity's index keys, in the background, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("waiting for a worker")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    class Reason(models.TextChoices):
        RULE = "rule", _("a rule changed")
        PLACEHOLDERS = "placeholders", _("the placeholder values changed")
        FIELD_TYPE = "field_type", _("a custom field's type changed")
        REBUILD = "rebuild", _("a full rebuild")
        UPDATE = "update", _("an update reads values differently")

    entity = models.CharField(_("records"), max_length=32, db_index=True)
    reason = models.CharField(_("why"), max_length=16, choices=Reason.choices, default=Reason.RULE)
    kinds = models.JSONField(_("kinds of keys"), default=list, blank=True)
    # A large rebuild is split into parts by id range, one task each, so several workers share it; the parts
    # of one rebuild share `batch` (the first part's id). None: the whole entity in one part.
    batch = models.BigIntegerField(_("rebuild"), null=True, blank=True, db_index=True)
    first_id = models.BigIntegerField(_("from record"), null=True, blank=True)
    last_id = models.BigIntegerField(_("to record"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(_("records"), default=0)
    done = models.PositiveIntegerField(_("records done"), default=0)
    queued_at = models.DateTimeField(_("queued"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("index rebuild")
        verbose_name_plural = _("index rebuilds")
        ordering = ["-queued_at", "-id"]

    def __str__(self):
        return f"{self.entity} #{self.pk} ({self.get_status_display()})"
