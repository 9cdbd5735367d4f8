"""Inlines of the CRM's change forms: contact points (phones, emails, messengers) and the timeline."""
from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.contenttypes.admin import BaseGenericInlineFormSet, GenericTabularInline
from django.core.exceptions import ValidationError
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from ..models import (
    Attachment,
    Call,
    ChatMessage,
    Email,
    EmailMessage,
    MessengerHandle,
    Note,
    OrderItem,
    Phone,
    SmsMessage,
    Stage,
    Task,
)


class CardInlineFormSet(BaseGenericInlineFormSet):
    """The formset of a card's inline, whose empty form (the template row of "Add another") is built once.

    Django builds a new empty form on every read of `empty_form`, and the admin reads it four to six times per
    inline (the header's fields, media, multipart, the template row): each a form with deep-copied fields. A card
    has ten inlines, so this was a tenth of its time (bench/README.md, "The card"). The form is unbound and never
    changed after it is built, so one serves every read.
    """

    @cached_property
    def empty_form(self):
        return super().empty_form


class CardInlineAdminFormSet(helpers.InlineAdminFormSet):
    """The admin's wrapper of a card's inline formset, whose media is its formset's.

    Django adds up the media of every row (an InlineAdminForm built per row, the template row's too, and the same
    lists merged again each time): a few milliseconds per card. Every form of a formset is of the formset's form
    class, so their media is the formset's own (its first form's).
    """

    @property
    def media(self):
        return self.opts.media + self.formset.media


class LatestRowsFormSet(CardInlineFormSet):
    """A card's inline of a record's timeline items that shows only the latest ``latest`` of them (in the inline's
    order), so the card costs the same for a record with years of notes; the card links to all of them
    (crm/admin/card_timeline.py). A row posted that is no longer among the latest (one added meanwhile) is still
    the record's own row and is saved as edited."""

    latest = 5

    def get_queryset(self):
        if not hasattr(self, "_latest_rows"):
            self._record_rows = super().get_queryset()
            self._latest_rows = self._record_rows[: self.latest]
        return self._latest_rows

    def _existing_object(self, pk):
        found = super()._existing_object(pk)
        if found is None and pk is not None:
            found = self._record_rows.filter(pk=pk).first()
        return found


class PhoneInline(GenericTabularInline):
    model = Phone
    formset = CardInlineFormSet
    fields = ["number", "kind", "is_primary", "e164"]
    readonly_fields = ["e164"]
    extra = 1


class EmailInline(GenericTabularInline):
    model = Email
    formset = CardInlineFormSet
    fields = ["address", "is_primary"]
    extra = 1


class MessengerHandleInline(GenericTabularInline):
    model = MessengerHandle
    formset = CardInlineFormSet
    fields = ["channel", "username", "chat_id", "is_primary"]
    extra = 0


CONTACT_INLINES = [PhoneInline, EmailInline, MessengerHandleInline]


class TimelineInline(GenericTabularInline):
    """A kind of timeline item on an entity's card, its latest rows; the author is the user who added it, set on
    save."""

    extra = 0
    show_change_link = True
    readonly_fields = ["author"]
    formset = LatestRowsFormSet

    def get_queryset(self, request):
        # The author is shown on every row: one join instead of a query per row.
        return super().get_queryset(request).select_related("author")

    # (rows, cols) of the "text" field's box on the card, for the kinds that have one.
    text_box: tuple[int, int] | None = None

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if self.text_box and db_field.name == "text":
            field.widget.attrs.update(rows=self.text_box[0], cols=self.text_box[1])
        return field


class StoredTextForm(forms.ModelForm):
    """Texts the system wrote (``stored_texts``: {text field: its message field}) show in the reader's language;
    once edited by hand they are plain text."""

    stored_texts: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from dedup.messages import text_of

        for text_field, data_field in self.stored_texts.items():
            data = getattr(self.instance, data_field, None)
            if self.instance.pk and data and text_field in self.fields:
                self.initial[text_field] = text_of(data, getattr(self.instance, text_field))

    def save(self, commit=True):
        for text_field, data_field in self.stored_texts.items():
            if text_field in self.changed_data:
                setattr(self.instance, data_field, None)
        return super().save(commit)


class NoteForm(StoredTextForm):
    stored_texts = {"text": "message"}


class TitleForm(StoredTextForm):
    """A lead, deal or task whose title the intake wrote."""

    stored_texts = {"title": "title_data"}


class NoteFormSet(LatestRowsFormSet):
    def clean(self):
        super().clean()
        pinned = [
            form
            for form in self.forms
            if getattr(form, "cleaned_data", {}).get("pinned") and not form.cleaned_data.get("DELETE")
        ]
        # The database allows one pinned note per record; say so instead of failing on save.
        if len(pinned) > 1:
            raise ValidationError(_("Only one note can be pinned; unpin the others first."), code="pinned")


class NoteInline(TimelineInline):
    model = Note
    form = NoteForm
    formset = NoteFormSet
    fields = ["text", "pinned", "created_at", "author"]
    text_box = (2, 60)

    def get_queryset(self, request):
        # The pinned note first, as on the card; unpinning it is then saved before another note is pinned.
        return super().get_queryset(request).order_by("-pinned", "-created_at", "-id")


class TaskInline(TimelineInline):
    model = Task
    form = TitleForm
    fields = ["title", "due_at", "assignee", "done", "created_at", "author"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "assignee" and field is not None:
            # Evaluate the users once for the whole formset: every row's select shares the list instead of
            # querying the users again (a query per task otherwise). Through iter(): list() of the choices asks
            # their length first, a COUNT of the users.
            field.choices = list(iter(field.choices))
        return field


class CallInline(TimelineInline):
    model = Call
    fields = ["direction", "phone", "duration_seconds", "result", "created_at", "author"]


class EmailMessageInline(TimelineInline):
    model = EmailMessage
    fields = ["direction", "subject", "sender", "recipient", "created_at", "author"]


class SmsMessageInline(TimelineInline):
    model = SmsMessage
    fields = ["direction", "phone", "text", "created_at", "author"]
    text_box = (2, 40)


class ChatMessageInline(TimelineInline):
    model = ChatMessage
    fields = ["channel", "direction", "username", "chat_id", "text", "created_at", "author"]
    text_box = (2, 40)


class AttachmentInline(TimelineInline):
    model = Attachment
    fields = ["file", "name", "created_at", "author"]


# The timeline items managers work on in the card; calls, messages and attachments are its read-only history
# (crm/admin/card_timeline.py). The other inlines stay for a page that wants them editable.
TIMELINE_INLINES = [NoteInline, TaskInline]


class StageInline(admin.TabularInline):
    model = Stage
    fields = ["name", "semantic", "sort_order"]
    extra = 1


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ["name", "sku", "quantity", "price", "line_total"]
    readonly_fields = ["line_total"]
    extra = 1

    @admin.display(description=_("line total"))
    def line_total(self, item):
        return item.line_total if item.pk else "\u2014"
