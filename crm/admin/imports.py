"""Admin of imports: the list of imported files, each one's rows (what happened and why), and its undo."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..importing.report import line_text
from ..importing.undo import import_model, import_undo
from ..models import ImportBatch

# Rows listed on an import's page; the rest are counted (a 100,000-row file must not render them all).
ROWS_SHOWN = 500


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id", "entity", "file_name", "policy", "source", "user", "started_at", "rows", "created", "flagged",
        "updated", "skipped", "undone_at",
    ]
    list_filter = ["entity", "policy", "source", ("undone_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["file_name"]
    actions = ["undo_imports"]
    change_form_template = "admin/crm/importbatch/change_form.html"
    readonly_fields = [
        "entity", "file_name", "policy", "source", "user", "started_at", "finished_at", "rows", "created",
        "flagged", "updated", "skipped", "undone_at", "undone_by",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # an import is made by importing a file

    def has_change_permission(self, request, obj=None):
        return False  # read-only; the undo is an action

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if batch is not None:
            model = import_model(batch)
            page = Paginator(batch.lines.order_by("line", "id"), ROWS_SHOWN).get_page(request.GET.get("p"))
            extra_context["import_lines"] = [(line, line_text(model, line)) for line in page]
            extra_context["import_page"] = page
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description=_("Undo the selected imports"), permissions=["view"])
    def undo_imports(self, request, queryset):
        done = 0
        for batch in queryset.order_by("-started_at", "-pk"):  # newest first: a later import may build on it
            try:
                import_undo(batch=batch, user=request.user)
            except (ValidationError, PermissionDenied) as error:
                text = " ".join(getattr(error, "messages", None) or [str(error)])
                self.message_user(
                    request,
                    _("Import #%(id)s was not undone: %(reason)s") % {"id": batch.pk, "reason": text},
                    messages.ERROR,
                )
                continue
            done += 1
        if done:
            self.message_user(
                request,
                ngettext("%(count)d import undone.", "%(count)d imports undone.", done) % {"count": done},
                messages.SUCCESS,
            )
