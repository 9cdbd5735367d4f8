"""Phones, emails and messenger handles, attached to a customer, company or lead."""
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from dedup.engine.normalize import phone_e164


class ContactPoint(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")
    is_primary = models.BooleanField(_("primary"), default=False)

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["content_type", "object_id"], name="%(class)s_owner_idx")]


class Phone(ContactPoint):
    class Kind(models.TextChoices):
        MOBILE = "mobile", _("mobile")
        WORK = "work", _("work")
        HOME = "home", _("home")
        OTHER = "other", _("other")

    number = models.CharField(_("number"), max_length=64, help_text=_("As typed, in any format."))
    e164 = models.CharField(
        _("international format"), max_length=20, blank=True, default="", editable=False, db_index=True
    )
    kind = models.CharField(_("type"), max_length=10, choices=Kind.choices, default=Kind.MOBILE)

    class Meta(ContactPoint.Meta):
        verbose_name = _("phone")
        verbose_name_plural = _("phones")
        ordering = ["-is_primary", "id"]

    def __str__(self):
        return self.number

    def save(self, *args, **kwargs):
        # A number that cannot be parsed keeps its text and an empty e164: kept, never matched.
        self.e164 = phone_e164(self.number) or ""
        super().save(*args, **kwargs)


class Email(ContactPoint):
    # A CharField, not EmailField: imported addresses are kept as typed even when malformed.
    address = models.CharField(_("address"), max_length=254)

    class Meta(ContactPoint.Meta):
        verbose_name = _("email")
        verbose_name_plural = _("emails")
        ordering = ["-is_primary", "id"]
        # The intake finds who an incoming address belongs to by its case-folded form.
        indexes = [*ContactPoint.Meta.indexes, models.Index(Lower("address"), name="email_address_lower_idx")]

    def __str__(self):
        return self.address


class MessengerHandle(ContactPoint):
    class Channel(models.TextChoices):
        TELEGRAM = "telegram", "Telegram"
        WHATSAPP = "whatsapp", "WhatsApp"
        VIBER = "viber", "Viber"
        OTHER = "other", _("other")

    channel = models.CharField(_("messenger"), max_length=16, choices=Channel.choices, default=Channel.TELEGRAM)
    username = models.CharField(_("username"), max_length=100, blank=True, default="")
    chat_id = models.CharField(
        _("chat ID"), max_length=100, blank=True, default="", help_text=_("Known even when the phone is hidden.")
    )

    class Meta(ContactPoint.Meta):
        verbose_name = _("messenger handle")
        verbose_name_plural = _("messenger handles")
        ordering = ["-is_primary", "id"]
        # The intake recognises a chat by its id or its case-folded username.
        indexes = [
            *ContactPoint.Meta.indexes,
            models.Index(Lower("username"), name="messenger_username_lower_idx"),
            models.Index(fields=["chat_id"], name="messenger_chat_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(username="") | ~Q(chat_id=""), name="messenger_username_or_chat_id"
            ),
        ]

    def __str__(self):
        handle = f"@{self.username.lstrip('@')}" if self.username else f"chat {self.chat_id}"
        return f"{self.get_channel_display()} {handle}"
