"""The timeline of any entity: notes, tasks, calls, emails, SMS, chat messages and attachments."""
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .stored_texts import StoredTitleMixin


class Direction(models.TextChoices):
    INCOMING = "in", _("incoming")
    OUTGOING = "out", _("outgoing")


class TimelineItem(models.Model):
    content_type = models.ForeignKey(ContentType, verbose_name=_("record type"), on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField(_("record ID"))
    content_object = GenericForeignKey("content_type", "object_id")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="%(class)s_owner_idx")]


class Note(TimelineItem):
    text = models.TextField(_("text"))
    pinned = models.BooleanField(_("pinned"), default=False)
    # A note the system wrote (the intake, a merge): its message id and parameters (dedup.messages), shown in the
    # reader's language until someone edits the text; ``text`` keeps it as written.
    message = models.JSONField(_("message data"), null=True, blank=True, editable=False)

    class Meta(TimelineItem.Meta):
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        constraints = [
            # One pinned note per record: the card shows it on top.
            models.UniqueConstraint(
                fields=["content_type", "object_id"], condition=Q(pinned=True), name="note_one_pinned_per_record"
            ),
        ]

    def __str__(self):
        return self.display_text[:60]

    @property
    def display_text(self) -> str:
        """The note in the reader's language (a system note) or as typed."""
        if self.message:
            from dedup.messages import render

            return render(self.message)
        return self.text


class Task(StoredTitleMixin, TimelineItem):
    title = models.CharField(_("title"), max_length=255)
    # A task the system set (the intake's "contact them"): shown in the reader's language until edited.
    title_data = models.JSONField(_("title data"), null=True, blank=True, editable=False)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("assignee"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="crm_tasks",
    )
    done = models.BooleanField(_("done"), default=False)

    class Meta(TimelineItem.Meta):
        verbose_name = _("task")
        verbose_name_plural = _("tasks")


class Call(TimelineItem):
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices, default=Direction.INCOMING)
    phone = models.CharField(_("phone"), max_length=64, blank=True, default="")
    duration_seconds = models.PositiveIntegerField(_("duration, seconds"), default=0)
    result = models.CharField(_("result"), max_length=255, blank=True, default="")

    class Meta(TimelineItem.Meta):
        verbose_name = _("call")
        verbose_name_plural = _("calls")

    def __str__(self):
        return f"{self.get_direction_display()} {self.phone}"


class EmailMessage(TimelineItem):
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices, default=Direction.INCOMING)
    subject = models.CharField(_("subject"), max_length=255, blank=True, default="")
    body = models.TextField(_("body"), blank=True, default="")
    sender = models.CharField(_("from"), max_length=254, blank=True, default="")
    recipient = models.CharField(_("to"), max_length=254, blank=True, default="")

    class Meta(TimelineItem.Meta):
        verbose_name = _("email message")
        verbose_name_plural = _("email messages")

    def __str__(self):
        return self.subject or _("(no subject)")


class SmsMessage(TimelineItem):
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices, default=Direction.OUTGOING)
    phone = models.CharField(_("phone"), max_length=64, blank=True, default="")
    text = models.TextField(_("text"))

    class Meta(TimelineItem.Meta):
        verbose_name = _("SMS")
        verbose_name_plural = _("SMS")

    def __str__(self):
        return self.text[:60]


class ChatMessage(TimelineItem):
    channel = models.CharField(_("channel"), max_length=16, default="telegram")
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices, default=Direction.INCOMING)
    chat_id = models.CharField(_("chat ID"), max_length=100, blank=True, default="")
    username = models.CharField(_("username"), max_length=100, blank=True, default="")
    text = models.TextField(_("text"))

    class Meta(TimelineItem.Meta):
        verbose_name = _("chat message")
        verbose_name_plural = _("chat messages")

    def __str__(self):
        return self.text[:60]


class Attachment(TimelineItem):
    file = models.FileField(_("file"), upload_to="attachments/%Y/%m/")
    name = models.CharField(_("name"), max_length=255, blank=True, default="")

    class Meta(TimelineItem.Meta):
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self):
        return self.name or self.file.name
