"""Change lists of the timeline: notes, tasks, calls, emails, SMS, chat messages and attachments of any entity."""
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import Attachment, Call, ChatMessage, EmailMessage, Note, SmsMessage, Task
from .inlines import NoteForm

#: The models a timeline item can belong to.
ENTITY_MODELS = ["customer", "company", "lead", "deal", "order"]


class TimelineItemAdmin(admin.ModelAdmin):
    date_hierarchy = "created_at"
    list_per_page = 50
    list_select_related = ["author"]
    list_filter = [("content_type", admin.RelatedOnlyFieldListFilter)]
    autocomplete_fields = ["author"]

    def get_queryset(self, request):
        # One query per kind of record for the "record" column, not one per row.
        return super().get_queryset(request).prefetch_related("content_object")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "content_type":
            kwargs["queryset"] = ContentType.objects.filter(app_label="crm", model__in=ENTITY_MODELS)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if obj.author_id is None and not change:
            obj.author = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=_("record"))
    def record(self, item):
        target = item.content_object
        if target is None:
            return "\u2014"
        try:
            url = reverse(
                f"admin:{target._meta.app_label}_{target._meta.model_name}_change",
                args=[target.pk],
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:
            return str(target)
        return format_html('<a href="{}">{}: {}</a>', url, target._meta.verbose_name, target)


@admin.register(Note)
class NoteAdmin(TimelineItemAdmin):
    form = NoteForm
    list_display = ["__str__", "pinned", "record", "author", "created_at"]
    list_filter = ["pinned", *TimelineItemAdmin.list_filter]
    search_fields = ["text"]
    fields = ["content_type", "object_id", "text", "pinned", "author", "created_at"]


@admin.register(Task)
class TaskAdmin(TimelineItemAdmin):
    list_display = ["title", "due_at", "done", "assignee", "record", "author", "created_at"]
    list_select_related = ["author", "assignee"]
    list_filter = ["done", *TimelineItemAdmin.list_filter]
    search_fields = ["title"]
    autocomplete_fields = ["author", "assignee"]
    fields = ["content_type", "object_id", "title", "due_at", "assignee", "done", "author", "created_at"]


@admin.register(Call)
class CallAdmin(TimelineItemAdmin):
    list_display = ["__str__", "direction", "phone", "duration_seconds", "result", "record", "author", "created_at"]
    list_filter = ["direction", *TimelineItemAdmin.list_filter]
    search_fields = ["phone", "result"]
    fields = ["content_type", "object_id", "direction", "phone", "duration_seconds", "result", "author", "created_at"]


@admin.register(EmailMessage)
class EmailMessageAdmin(TimelineItemAdmin):
    list_display = ["__str__", "direction", "sender", "recipient", "record", "created_at"]
    list_filter = ["direction", *TimelineItemAdmin.list_filter]
    search_fields = ["subject", "sender", "recipient", "body"]
    fields = [
        "content_type", "object_id", "direction", "sender", "recipient", "subject", "body", "author", "created_at"
    ]


@admin.register(SmsMessage)
class SmsMessageAdmin(TimelineItemAdmin):
    list_display = ["__str__", "direction", "phone", "record", "created_at"]
    list_filter = ["direction", *TimelineItemAdmin.list_filter]
    search_fields = ["phone", "text"]
    fields = ["content_type", "object_id", "direction", "phone", "text", "author", "created_at"]


@admin.register(ChatMessage)
class ChatMessageAdmin(TimelineItemAdmin):
    list_display = ["__str__", "channel", "direction", "username", "chat_id", "record", "created_at"]
    list_filter = ["channel", "direction", *TimelineItemAdmin.list_filter]
    search_fields = ["text", "username", "chat_id"]
    fields = [
        "content_type", "object_id", "channel", "direction", "username", "chat_id", "text", "author", "created_at"
    ]


@admin.register(Attachment)
class AttachmentAdmin(TimelineItemAdmin):
    list_display = ["__str__", "file", "record", "author", "created_at"]
    search_fields = ["name", "file"]
    fields = ["content_type", "object_id", "file", "name", "author", "created_at"]
