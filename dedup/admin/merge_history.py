"""Admin of merge jobs (history, undo) and of the current user's notifications."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from dedup.merge import MERGE_PERMISSION, MergeError, merge_undo_request
from dedup.models import MergeJob, Notification
from dedup.notifications import notifications_mark_read
from dedup.records import record_admin_url


def _record_link(job: MergeJob, pk) -> str:
    model = job.content_type.model_class()
    url = record_admin_url(model, pk) if model is not None else ""
    if url:
        return format_html('<a href="{}">#{}</a>', url, pk)
    return f"#{pk}"


@admin.register(MergeJob)
class MergeJobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "entity_label", "survivor_link", "absorbed_links", "status", "created_by", "created_at",
                    "finished_at", "error_text"]
    list_filter = ["status", "entity_key"]
    list_select_related = ["content_type", "created_by"]
    search_fields = ["=survivor_id", "=records__record_id", "created_by__username"]
    date_hierarchy = "created_at"
    actions = ["undo_merges"]
    exclude = ["snapshot"]
    readonly_fields = ["survivor_link", "absorbed_links"]

    @admin.display(description=_("error"))
    def error_text(self, job):
        return job.error_text

    @admin.display(description=_("records"), ordering="entity_key")
    def entity_label(self, job):
        model = job.content_type.model_class()
        return capfirst(model._meta.verbose_name_plural) if model is not None else job.entity_key

    @admin.display(description=_("priority record"))
    def survivor_link(self, job):
        return _record_link(job, job.survivor_id)

    @admin.display(description=_("merged records"))
    def absorbed_links(self, job):
        return format_html_join(", ", "{}", ((_record_link(job, pk),) for pk in job.absorbed_ids or []))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a merge job is history; it changes only by running or being undone

    def has_merge_permission(self, request):
        return request.user.has_perm(MERGE_PERMISSION)

    @admin.action(description=_("Undo the selected merges"), permissions=["merge"])
    def undo_merges(self, request, queryset):
        queued = 0
        for job in queryset.select_related("content_type"):
            try:
                merge_undo_request(job=job, user=request.user)
            except (MergeError, PermissionDenied) as error:
                self.message_user(request, f"{job}: {error}", messages.ERROR)
            else:
                queued += 1
        if queued:
            self.message_user(
                request,
                ngettext(
                    "%(count)d undo queued; you will be notified when it is done.",
                    "%(count)d undos queued; you will be notified when they are done.",
                    queued,
                )
                % {"count": queued},
                messages.SUCCESS,
            )


class ReadFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("no", _("unread")), ("yes", _("read"))]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(read_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(read_at__isnull=False)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Every staff user sees their own notifications, and only those."""

    list_display = ["created_at", "level", "message_with_link", "is_read"]
    list_display_links = None
    list_filter = [ReadFilter, "level"]
    actions = ["mark_read"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)

    @admin.display(description=_("message"))
    def message_with_link(self, notification):
        if notification.url:
            return format_html('{} <a href="{}">{}</a>', notification.text, notification.url, _("Open"))
        return notification.text

    @admin.display(description=_("read"), boolean=True)
    def is_read(self, notification):
        return notification.is_read

    def _own(self, request, obj):
        user = request.user
        return user.is_active and user.is_staff and (obj is None or obj.user_id == user.pk)

    def has_module_permission(self, request):
        return self._own(request, None)

    def has_view_permission(self, request, obj=None):
        return self._own(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._own(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Mark as read"))
    def mark_read(self, request, queryset):
        count = notifications_mark_read(user=request.user, ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("%(count)d notification marked read.", "%(count)d notifications marked read.", count)
            % {"count": count},
            messages.SUCCESS,
        )
