"""Intake: integration tokens, the log of incoming requests, duplicate control of incoming leads, repeat sales."""
from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from dedup.registry import CUSTOM_PREFIX

from .sales import Deal, Lead, Pipeline, Stage

# Kommo's limit: with more matches than this the incoming request is not merged into anything.
MAX_MERGED_MATCHES = 3
# Text and number fields of a lead an admin may add to the incoming duplicate check (Kommo: "Add field").
MATCHABLE_LEAD_FIELDS = (
    "title",
    "first_name",
    "last_name",
    "middle_name",
    "company_name",
    "source",
    "amount",
    "external_id",
)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class IntegrationTokenManager(models.Manager):
    def issue(self, *, name: str, pipeline: Pipeline | None = None, owner=None, created_by=None):
        """Create a token and return it with its secret, which is shown once and stored only as a hash."""
        raw = secrets.token_urlsafe(32)
        token = self.create(
            name=name,
            prefix=raw[:8],
            key_hash=token_hash(raw),
            pipeline=pipeline,
            owner=owner,
            created_by=created_by,
        )
        return token, raw

    def rotate(self, *, token: IntegrationToken) -> str:
        """Give the token a new secret (the old one stops working at once) and return it."""
        raw = secrets.token_urlsafe(32)
        token.prefix, token.key_hash, token.is_active = raw[:8], token_hash(raw), True
        # A save, not an update(): its post_save renews the intake's configuration stamp (crm.intake.config), so
        # every process drops its copy of the old secret at once.
        token.save(update_fields=["prefix", "key_hash", "is_active"])
        return raw


class IntegrationToken(models.Model):
    """One integration (a web form, a telephony service, a messenger bot) allowed to post to the intake API."""

    name = models.CharField(_("integration"), max_length=100, help_text=_("E.g. “Website form”."))
    prefix = models.CharField(_("token starts with"), max_length=8, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    pipeline = models.ForeignKey(
        Pipeline,
        verbose_name=_("default pipeline"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Where leads go when the request names no pipeline."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("responsible manager"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Responsible manager of the leads this integration creates."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    objects = IntegrationTokenManager()

    class Meta:
        verbose_name = _("integration token")
        verbose_name_plural = _("integration tokens")
        ordering = ["name", "id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}\u2026)"


class IncomingRequest(models.Model):
    """An accepted incoming lead or message: what was decided, why, and the response a retry gets again."""

    class Kind(models.TextChoices):
        LEAD = "lead", _("lead")
        MESSAGE = "message", _("message")

    class Decision(models.TextChoices):
        CREATED = "created", _("new record created")
        UPDATED = "updated", _("existing record updated")
        KEPT = "kept", _("matched, existing record kept as it was")
        CREATED_DESPITE_MATCHES = "created_despite_matches", _("new record created despite matches")
        FLAGGED = "flagged", _("new record flagged for duplicate review")
        APPENDED = "appended", _("message added to an existing chat")
        MERGED = "merged", _("records merged")
        ADDED_TO_CUSTOMER = "added_to_customer", _("added to the customer's history")

    token = models.ForeignKey(
        IntegrationToken, verbose_name=_("integration"), null=True, on_delete=models.SET_NULL, related_name="requests"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True, default="")
    body_hash = models.CharField(_("body hash"), max_length=64, blank=True, default="")
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    decision = models.CharField(_("decision"), max_length=32, choices=Decision.choices, blank=True, default="")
    reason = models.TextField(_("reason"), blank=True, default="")
    # The reason as message ids and parameters (dedup.messages), shown in the reader's language.
    reason_data = models.JSONField(_("reason data"), null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response = models.JSONField(_("response"), default=dict, blank=True)
    lead = models.ForeignKey(
        Lead, verbose_name=_("lead"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deal = models.ForeignKey(
        Deal, verbose_name=_("deal"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    # What an update of existing records changed, so it can be reverted: [{"model": "crm.lead", "pk": 5,
    # "fields": {name: {"before": …, "after": …}}, "added": {"crm.phone": [ids], …}, "tags": [tag ids]}].
    changes = models.JSONField(_("changes"), default=list, blank=True)
    reverted_at = models.DateTimeField(_("reverted"), null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reverted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("incoming request")
        verbose_name_plural = _("incoming requests")
        ordering = ["-created_at", "-id"]
        constraints = [
            # A retried webhook carries the same key: it gets the stored response, never a second lead.
            models.UniqueConstraint(
                fields=["token", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="incoming_request_idempotency_unique",
            ),
        ]

    def __str__(self):
        return _("%(kind)s #%(id)s: %(decision)s") % {
            "kind": self.get_kind_display(),
            "id": self.pk,
            "decision": self.get_decision_display() or "\u2026",
        }


class IntakeSettings(models.Model):
    """How incoming leads of one pipeline are checked for duplicates (Kommo's "Duplicate control")."""

    class ConflictPolicy(models.TextChoices):
        UPDATE = "update", _("update the existing lead with the new data")
        KEEP = "keep", _("do not change the data in the existing lead")

    class MultiMatchPolicy(models.TextChoices):
        UPDATE_ALL = "update_all", _("update all matching leads")
        UPDATE_NEWEST = "update_newest", _("update the newest lead")
        CREATE_NEW = "create_new", _("create a new lead")

    pipeline = models.OneToOneField(
        Pipeline,
        verbose_name=_("pipeline"),
        on_delete=models.CASCADE,
        related_name="intake_settings",
        help_text=_("The pipeline incoming leads are created in."),
    )
    is_enabled = models.BooleanField(
        _("check incoming leads for duplicates"), default=True, help_text=_("Off: every incoming lead is new.")
    )
    match_email = models.BooleanField(_("match email addresses"), default=True)
    match_phone = models.BooleanField(
        _("match phone numbers"),
        default=True,
        help_text=_("Numbers are compared in international format, national forms included."),
    )
    match_messenger = models.BooleanField(_("match messenger chats and usernames"), default=True)
    match_fields = models.JSONField(
        _("also match these fields"),
        default=list,
        blank=True,
        help_text=_(
            "Text or number fields of the lead, or custom fields as “custom:” and the key, e.g. “custom:service”."
        ),
    )
    search_stages = models.ManyToManyField(
        Stage,
        verbose_name=_("search in stages"),
        blank=True,
        related_name="+",
        help_text=_(
            "Leads and deals in these stages are compared with incoming leads; empty means the open stages "
            "of this pipeline. Won and lost stages are best left out, or returning customers are never seen "
            "as repeat sales."
        ),
    )
    conflict_policy = models.CharField(
        _("when duplicates contain conflicting data"),
        max_length=8,
        choices=ConflictPolicy.choices,
        default=ConflictPolicy.UPDATE,
    )
    multi_match_policy = models.CharField(
        _("when 2 or more leads match"),
        max_length=16,
        choices=MultiMatchPolicy.choices,
        default=MultiMatchPolicy.UPDATE_NEWEST,
        help_text=_("With more than 3 matches nothing is merged: a new lead is created and flagged for review."),
    )
    create_task_after_merge = models.BooleanField(
        _("create a task after merging"),
        default=False,
        help_text=_("A task for the responsible manager of each lead the incoming request was merged into."),
    )

    class Meta:
        verbose_name = _("incoming lead settings")
        verbose_name_plural = _("incoming lead settings")
        ordering = ["pipeline"]

    def __str__(self):
        return str(self.pipeline)

    def clean(self):
        super().clean()
        fields = self.match_fields if isinstance(self.match_fields, list) else None
        if fields is None or not all(isinstance(name, str) for name in fields):
            raise ValidationError({"match_fields": _("A list of field names.")})
        unknown = [
            name
            for name in fields
            if name not in MATCHABLE_LEAD_FIELDS
            and not (name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX))
        ]
        if unknown:
            raise ValidationError(
                {"match_fields": _("These fields cannot be matched: %(fields)s.") % {"fields": ", ".join(unknown)}}
            )


class RepeatSalesSettings(models.Model):
    """Repeat sales (Bitrix24's "repeat sales mode"); one row for the whole CRM."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    enabled = models.BooleanField(
        _("enable repeat sales mode"),
        default=True,
        help_text=_(
            "On: a returning customer's new lead or deal is marked as repeat. Off: no repeat lead is "
            "created; a returning customer's request is added to the customer's history instead."
        ),
    )
    simple_crm_mode = models.BooleanField(
        _("simple CRM mode (no leads)"),
        default=False,
        help_text=_("Incoming requests become deals, and repeat deals are created instead of repeat leads."),
    )
    default_deal_pipeline = models.ForeignKey(
        Pipeline,
        verbose_name=_("deal pipeline for incoming requests"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"kind": Pipeline.Kind.DEAL},
        help_text=_("Simple CRM mode: where deals go when the request names no pipeline."),
    )

    class Meta:
        verbose_name = _("repeat sales settings")
        verbose_name_plural = _("repeat sales settings")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="repeat_sales_settings_singleton")]

    def __str__(self):
        return str(_("Repeat sales settings"))

    @classmethod
    def load(cls) -> RepeatSalesSettings:
        """Return the saved settings, or the defaults (unsaved): reading them never writes."""
        return cls.objects.filter(id=cls.SINGLETON_ID).select_related("default_deal_pipeline").first() or cls()


class IntakeConfigStamp(models.Model):
    """A value that changes with every change to what the intake reads on each request (tokens, pipelines,
    stages, incoming lead and repeat sales settings): each process keeps that configuration in memory and
    reads only this stamp, in the token's own query, to know whether it is still current. One row."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    stamp = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("intake configuration stamp")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="intake_config_stamp_singleton")]

    def __str__(self):
        return str(self.stamp)
