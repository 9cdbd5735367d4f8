"""What every CRM entity's admin shares: search by phone, archived records, timeline authors, import/export."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportMixin
from import_export.formats import base_formats
from import_export.forms import SelectableFieldsExportForm

from dedup.engine.normalize import phone_e164

from ..filters import KindFilter
from ..importing import forms as import_forms
from ..importing.files import ImportFileError
from ..models import Email, Phone, Pipeline, Stage
from .card_timeline import card_history
from .inlines import TIMELINE_INLINES, CardInlineAdminFormSet
from .paging import EstimatedCountPaginator

#: How many of a failed import's errors the message after "Confirm import" lists; the rest are counted.
IMPORT_ERRORS_SHOWN = 10


def primary_value(model, owner_model, column: str) -> Subquery:
    """Return a subquery of a record's primary (else first) phone or email, for a change list column.

    A subquery in the list's own SELECT keeps the change list at a fixed number of queries however many rows
    it shows, and lets the column be sorted.
    """
    content_type = ContentType.objects.get_for_model(owner_model)
    return Subquery(
        model.objects.filter(content_type=content_type, object_id=OuterRef("pk"))
        .order_by("-is_primary", "id")
        .values(column)[:1]
    )


class EntityAdmin(admin.ModelAdmin):
    """Base of the customer, company, lead, deal and order admins."""

    list_per_page = 50
    # A change list page reads no whole table, at any size (bench/bench_counts.py, 1,000,000 customers):
    # - no "N total" next to a filtered count (Django counts the unfiltered table for it on every view);
    # - the count of the filtered list exact up to EXACT_COUNT_LIMIT rows, PostgreSQL's estimate above (paging.py);
    # - no date hierarchy: its SELECT DISTINCT DATE_TRUNC(...) and MIN/MAX ran over every matching row on every
    #   view (500 ms at 1M); the "created" from/to filter of the FilterSet (with its quick links) costs only when
    #   used, as an indexed range on created_at;
    # - filter choices from small tables, or from the column's index (DistinctValuesFilter), never a DISTINCT
    #   over the table.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    autocomplete_fields = ["owner", "tags"]
    readonly_fields = ["merged_into", "created_at", "updated_at"]
    inlines = TIMELINE_INLINES
    # The admin's change form with the record's history (calls, messages, attachments) as read-only tables.
    change_form_template = "admin/crm/entity_change_form.html"

    # --- Lists ---------------------------------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        e164 = phone_e164(search_term) if search_term else None
        if e164:
            by_phone = self.search_by_phone(queryset, e164)
            if by_phone is not None:
                results = results | by_phone
        if request.resolver_match and request.resolver_match.url_name == "autocomplete":
            # New links go to active records only; a merged-away record's page still opens from elsewhere.
            results = results.filter(is_archived=False)
        return results, may_have_duplicates

    def search_by_phone(self, queryset, e164: str):
        """Return the records with this phone (any written form of it), or None when the entity has no phones."""
        return None

    @admin.display(description=_("kind"), ordering="is_repeat")
    def kind(self, record):
        return dict(KindFilter.CHOICES)[KindFilter.kind_of(record)]

    # --- Forms ---------------------------------------------------------------------------------------------------

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # A stage's label names its pipeline: join it, or the select costs a query per stage.
        if db_field.related_model is Stage:
            kwargs.setdefault("queryset", Stage.objects.select_related("pipeline"))
            kind = getattr(self, "pipeline_kind", None)
            if kind:
                kwargs["queryset"] = kwargs["queryset"].filter(pipeline__kind=kind)
        elif db_field.related_model is Pipeline and getattr(self, "pipeline_kind", None):
            kwargs.setdefault("queryset", Pipeline.objects.filter(kind=self.pipeline_kind))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_inline_formsets(self, request, formsets, inline_instances, obj=None):
        inline_admin_formsets = super().get_inline_formsets(request, formsets, inline_instances, obj)
        for inline_admin_formset in inline_admin_formsets:
            # The same wrapper with a cheaper `media` (inlines.py): a subclass that adds no state.
            inline_admin_formset.__class__ = CardInlineAdminFormSet
        return inline_admin_formsets

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if change and obj is not None:
            context["crm_history"] = card_history(request, self.admin_site, obj)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for instance in instances:
            # Timeline items added on a card are the current user's.
            if instance.pk is None and hasattr(instance, "author_id") and instance.author_id is None:
                instance.author = request.user
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        formset.save_m2m()


class ContactsAdminMixin:
    """Columns with a record's primary phone and email (customers, companies, leads)."""

    def search_by_phone(self, queryset, e164):
        # "8 912 345-67-89" finds +79123456789. A subquery, not a join: a record with two matching phones is
        # still one row.
        owners = Phone.objects.filter(content_type=ContentType.objects.get_for_model(self.model), e164=e164)
        return queryset.filter(pk__in=owners.values("object_id"))

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                primary_phone=primary_value(Phone, self.model, "number"),
                primary_email=primary_value(Email, self.model, "address"),
            )
        )

    @admin.display(description=_("phone"), ordering="primary_phone")
    def primary_phone(self, record):
        # A phone number is read as one piece: never break it over lines.
        return format_html('<span style="white-space: nowrap">{}</span>', record.primary_phone or "")

    @admin.display(description=_("email"), ordering="primary_email")
    def primary_email(self, record):
        return record.primary_email or ""


class LabelledExportForm(SelectableFieldsExportForm):
    """The export form with the columns' labels in the user's language rather than their raw names."""

    def _get_field_label(self, resource, field_name):
        label = resource.column_label(field_name)
        return f"{label} ({field_name})" if str(label) != field_name else field_name


class EntityImportExportMixin(ImportExportMixin):
    """CSV and XLSX import and export; an import with any bad row saves nothing and says which lines are bad."""

    # Imports read our CSV and XLSX (the separator detected; size, dimension and row limits checked before
    # parsing); exports write django-import-export's own, whose XLSX keeps numbers and dates native.
    import_formats = [import_forms.CSV, import_forms.XLSX]
    export_formats = [base_formats.CSV, base_formats.XLSX]
    export_form_class = LabelledExportForm
    import_form_class = import_forms.LimitedImportForm
    confirm_form_class = import_forms.DuplicatesConfirmImportForm
    import_template_name = "admin/crm/import.html"

    def get_import_resource_kwargs(self, request, **kwargs):
        resource_kwargs = super().get_import_resource_kwargs(request, **kwargs)
        form = kwargs.get("form")
        cleaned = getattr(form, "cleaned_data", None) or {}
        resource_kwargs["policy"] = cleaned.get("duplicates") or None
        return resource_kwargs

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["duplicates"] = import_form.cleaned_data.get("duplicates")
        return initial

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, ImportFileError):
            form.add_error("import_file", str(e))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        # The preview shows the first IMPORT_PREVIEW_ROWS rows and counts the rest: a 20,000-row file must
        # not render megabytes of HTML (the import itself still reads every row).
        result = getattr(response, "context_data", {}).get("result")
        if result is not None:
            shown = settings.IMPORT_PREVIEW_ROWS
            valid_rows = result.valid_rows()
            response.context_data["preview_rows"] = valid_rows[:shown]
            response.context_data["preview_hidden"] = max(0, len(valid_rows) - shown)
            response.context_data["invalid_rows_shown"] = result.invalid_rows[:shown]
            response.context_data["invalid_hidden"] = max(0, len(result.invalid_rows) - shown)
        return response

    def has_import_permission(self, request):
        # An import creates and changes records: it takes both permissions (django-import-export lets any staff
        # user import unless a project-wide setting says otherwise).
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)

    def get_import_data_kwargs(self, **kwargs):
        kwargs = super().get_import_data_kwargs(**kwargs)
        # Invalid rows roll back the whole file, on the confirm step too (the data may have changed since the
        # preview): nothing of a file is imported unless all of it is.
        kwargs["rollback_on_validation_errors"] = True
        return kwargs

    def process_result(self, result, request):
        if not (result.has_errors() or result.has_validation_errors()):
            batch = getattr(result, "import_batch", None)
            if batch is None:
                return super().process_result(result, request)
            # The result page of the import: what each row became and why, and its undo.
            self.generate_log_entries(result, request)
            self.add_success_message(result, request)
            return HttpResponseRedirect(
                reverse("admin:crm_importbatch_change", args=[batch.pk], current_app=self.admin_site.name)
            )
        messages.error(request, import_failure_message(result))
        info = self.model._meta.app_label, self.model._meta.model_name
        return HttpResponseRedirect(reverse(f"admin:{info[0]}_{info[1]}_import", current_app=self.admin_site.name))


def import_failure_message(result) -> str:
    """Return a message saying that nothing was imported and which lines of the file were bad, and why."""
    problems = []
    for line, errors in result.row_errors():
        problems.extend(_("line %(line)s: %(error)s") % {"line": line, "error": error.error} for error in errors)
    for invalid in result.invalid_rows:
        for field, field_errors in invalid.field_specific_errors.items():
            problems.extend(
                _("line %(line)s: %(field)s: %(error)s") % {"line": invalid.number, "field": field, "error": error}
                for error in field_errors
            )
        problems.extend(
            _("line %(line)s: %(error)s") % {"line": invalid.number, "error": error}
            for error in invalid.non_field_specific_errors
        )
    for base_error in result.base_errors:
        problems.append(str(base_error.error))
    shown = "; ".join(str(problem) for problem in problems[:IMPORT_ERRORS_SHOWN])
    hidden = len(problems) - IMPORT_ERRORS_SHOWN
    message = _("Nothing was imported: %(problems)s") % {"problems": shown}
    if hidden > 0:
        message += " " + ngettext("(and %(count)d more problem)", "(and %(count)d more problems)", hidden) % {
            "count": hidden
        }
    return message
