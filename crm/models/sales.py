"""Pipelines with their stages, leads and deals."""
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .base import ContactsMixin, Entity
from .stored_texts import StoredTitleMixin
from .customers import Company, Customer


class Pipeline(models.Model):
    class Kind(models.TextChoices):
        LEAD = "lead", _("leads")
        DEAL = "deal", _("deals")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("for"), max_length=8, choices=Kind.choices, default=Kind.DEAL)
    sort_order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")
        ordering = ["kind", "sort_order", "id"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="pipeline_kind_name_unique")]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"


class Stage(models.Model):
    class Semantic(models.TextChoices):
        OPEN = "open", _("open")
        WON = "won", _("won")
        LOST = "lost", _("lost")

    pipeline = models.ForeignKey(Pipeline, verbose_name=_("pipeline"), on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(_("name"), max_length=100)
    semantic = models.CharField(_("meaning"), max_length=8, choices=Semantic.choices, default=Semantic.OPEN)
    sort_order = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ["pipeline", "sort_order", "id"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "name"], name="stage_pipeline_name_unique")]

    def __str__(self):
        return f"{self.pipeline.name}: {self.name}"

    @property
    def is_closed(self):
        return self.semantic != self.Semantic.OPEN


class StagedMixin(models.Model):
    """A pipeline and one of its stages; the stage must belong to the pipeline."""

    pipeline = models.ForeignKey(Pipeline, verbose_name=_("pipeline"), on_delete=models.PROTECT, related_name="+")
    stage = models.ForeignKey(Stage, verbose_name=_("stage"), on_delete=models.PROTECT, related_name="+")
    is_repeat = models.BooleanField(_("repeat"), default=False, db_index=True)
    is_repeat_inquiry = models.BooleanField(_("repeat inquiry"), default=False, db_index=True)

    class Meta:
        abstract = True

    def clean(self):
        super().clean()
        if self.stage_id and self.pipeline_id and self.stage.pipeline_id != self.pipeline_id:
            raise ValidationError({"stage": _("This stage belongs to another pipeline.")})


class Lead(StoredTitleMixin, ContactsMixin, StagedMixin, Entity):
    class Channel(models.TextChoices):
        WEB_FORM = "web_form", _("web form")
        PHONE = "phone", _("phone call")
        EMAIL = "email", _("email")
        TELEGRAM = "telegram", "Telegram"
        WHATSAPP = "whatsapp", "WhatsApp"
        CHAT = "chat", _("website chat")
        OTHER = "other", _("other")

    title = models.CharField(_("title"), max_length=255)
    # A title the intake wrote ("Request from …"): its message id and parameters (dedup.messages), shown in the
    # reader's language until someone changes the title; ``title`` keeps it as written.
    title_data = models.JSONField(_("title data"), null=True, blank=True, editable=False)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.WEB_FORM)
    first_name = models.CharField(_("first name"), max_length=100, blank=True, default="")
    last_name = models.CharField(_("last name"), max_length=100, blank=True, default="")
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True, default="")
    company_name = models.CharField(_("company name"), max_length=255, blank=True, default="")
    source = models.CharField(_("source"), max_length=100, blank=True, default="")
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, null=True, blank=True)
    # The first-party cookie of the site snippet (static/crm/snippet.js): a match key, so that two requests from
    # one browser meet even without a phone or an email. Checked by crm.intake.selectors.visitor_id_clean.
    visitor_id = models.CharField(_("visitor ID"), max_length=64, blank=True, default="", db_index=True)
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    company = models.ForeignKey(
        Company, verbose_name=_("company"), null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )

    class Meta(Entity.Meta):
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage"], name="lead_pipeline_stage_idx"),
            # The change list's "source" filter reads its choices from this index (crm.filters.distinct_values).
            models.Index(fields=["source"], name="lead_source_idx"),
        ]

    @property
    def full_name(self):
        return " ".join(part for part in (self.last_name, self.first_name, self.middle_name) if part)


class Deal(StoredTitleMixin, StagedMixin, Entity):
    title = models.CharField(_("title"), max_length=255)
    # As Lead.title_data: a title the intake wrote, in the reader's language until changed.
    title_data = models.JSONField(_("title data"), null=True, blank=True, editable=False)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, default=0)
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    company = models.ForeignKey(
        Company, verbose_name=_("company"), null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    service = models.CharField(
        _("service"),
        max_length=100,
        blank=True,
        default="",
        db_index=True,
        help_text=_("What the customer is interested in; deals can be merged only when it is the same."),
    )
    source_lead = models.ForeignKey(
        Lead, verbose_name=_("source lead"), null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta(Entity.Meta):
        verbose_name = _("deal")
        verbose_name_plural = _("deals")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage"], name="deal_pipeline_stage_idx"),
            # The change list's "service" filter reads its choices from this index (crm.filters.distinct_values).
            models.Index(fields=["service"], name="deal_service_idx"),
        ]
        constraints = Entity.Meta.constraints + [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="deal_amount_not_negative"),
        ]

