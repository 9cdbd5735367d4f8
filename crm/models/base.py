"""What every CRM entity has: timestamps, owner, external id, tags, custom fields and a timeline."""
from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=64, unique=True)
    color = models.CharField(_("colour"), max_length=7, default="#79aec8", help_text=_("A CSS colour, e.g. #79aec8."))

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self):
        return self.name


class Entity(models.Model):
    """Abstract base of customers, companies, leads, deals and orders."""

    external_id = models.CharField(
        _("external ID"), max_length=100, blank=True, default="", help_text=_("The record's ID in another system.")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("responsible manager"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_%(class)ss",
    )
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="%(class)ss")
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # A record absorbed by a merge is archived, not deleted: its page redirects to the survivor and the
    # merge can be undone.
    is_archived = models.BooleanField(_("archived"), default=False, db_index=True)
    merged_into = models.ForeignKey(
        "self", verbose_name=_("merged into"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    notes = GenericRelation("crm.Note")
    tasks = GenericRelation("crm.Task")
    calls = GenericRelation("crm.Call")
    email_messages = GenericRelation("crm.EmailMessage")
    sms_messages = GenericRelation("crm.SmsMessage")
    chat_messages = GenericRelation("crm.ChatMessage")
    attachments = GenericRelation("crm.Attachment")

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(external_id=""),
                name="%(app_label)s_%(class)s_external_id_unique",
            ),
        ]


class ContactsMixin(models.Model):
    """Several phones, emails and messenger handles (customers, companies and leads)."""

    phones = GenericRelation("crm.Phone", verbose_name=_("phones"))
    emails = GenericRelation("crm.Email", verbose_name=_("emails"))
    messengers = GenericRelation("crm.MessengerHandle", verbose_name=_("messengers"))

    class Meta:
        abstract = True
