"""Admin of the intake: integration tokens, incoming lead settings per pipeline, repeat sales, the request log."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crm.intake.revert import incoming_request_revert
from crm.intake.selectors import matchable_field_choices
from crm.models import IncomingRequest, IntakeSettings, IntegrationToken, Pipeline, RepeatSalesSettings, Stage
from dedup.messages import render
from dedup.registry import CUSTOM_PREFIX

# Where a new token's secret waits between saving the token and the page that shows it once.
NEW_SECRET_SESSION_KEY = "crm.intake.new_token_secret"


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "pipeline", "owner", "is_active", "last_used_at", "created_at")
    list_filter = ("is_active", "pipeline")
    search_fields = ("name", "prefix")
    fields = ("name", "pipeline", "owner", "is_active", "prefix", "created_at", "last_used_at")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    actions = ["rotate_secret", "revoke"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "pipeline" in form.base_fields:
            form.base_fields["pipeline"].queryset = Pipeline.objects.order_by("kind", "sort_order", "id")
        return form

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = IntegrationToken.objects.issue(
            name=obj.name, pipeline=obj.pipeline, owner=obj.owner, created_by=request.user
        )
        if not obj.is_active:
            IntegrationToken.objects.filter(pk=token.pk).update(is_active=False)
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = token.pk, token.prefix, token.key_hash, token.created_at
        # Held server-side (the session lives in the database) for the one page that shows it, then dropped.
        request.session[NEW_SECRET_SESSION_KEY] = raw

    def response_add(self, request, obj, post_url_continue=None):
        raw = request.session.pop(NEW_SECRET_SESSION_KEY, None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secrets_page(request, [(obj, raw)])

    def _secrets_page(self, request, secrets: list) -> TemplateResponse:
        """Show new secrets on a page of their own, rendered at once: never in a message (its cookie is readable)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("New token secrets"),
            "secrets": secrets,
        }
        response = TemplateResponse(request, "admin/crm/integrationtoken/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description=_("Issue a new secret (the old one stops working)"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        secrets = [(token, IntegrationToken.objects.rotate(token=token)) for token in queryset]
        return self._secrets_page(request, secrets)

    @admin.action(description=_("Revoke the selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(
            request, ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count) % {"count": count}
        )


class IntakeSettingsForm(forms.ModelForm):
    lead_fields = forms.MultipleChoiceField(
        label=_("Also match these lead fields"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Text or number fields: a request with the same value is a duplicate."),
    )
    custom_fields = forms.CharField(
        label=_("Also match these custom fields"),
        required=False,
        help_text=_("Names of custom fields, separated by commas, e.g. “contract, inn”."),
    )

    class Meta:
        model = IntakeSettings
        exclude = ("match_fields",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lead_fields"].choices = matchable_field_choices()
        self.fields["pipeline"].queryset = Pipeline.objects.order_by("kind", "sort_order", "id")
        self.fields["search_stages"].queryset = Stage.objects.select_related("pipeline").order_by(
            "pipeline__kind", "pipeline__sort_order", "pipeline_id", "sort_order", "id"
        )
        chosen = self.instance.match_fields or []
        self.initial.setdefault("lead_fields", [name for name in chosen if not name.startswith(CUSTOM_PREFIX)])
        self.initial.setdefault(
            "custom_fields", ", ".join(name[len(CUSTOM_PREFIX) :] for name in chosen if name.startswith(CUSTOM_PREFIX))
        )

    def clean_custom_fields(self):
        names = [name.strip() for name in self.cleaned_data["custom_fields"].split(",") if name.strip()]
        for name in names:
            if len(name) > 100:
                raise forms.ValidationError(_("A custom field name is at most 100 characters long."))
        return names

    def clean(self):
        cleaned = super().clean()
        pipeline = cleaned.get("pipeline")
        if pipeline is not None and pipeline.kind != Pipeline.Kind.LEAD:
            repeat = RepeatSalesSettings.load()
            if not repeat.simple_crm_mode:
                self.add_error(
                    "pipeline", _("Incoming requests go to lead pipelines (deal pipelines only in Simple CRM mode).")
                )
        return cleaned

    def save(self, commit=True):
        self.instance.match_fields = [
            *self.cleaned_data.get("lead_fields", []),
            *(CUSTOM_PREFIX + name for name in self.cleaned_data.get("custom_fields", [])),
        ]
        return super().save(commit)


@admin.register(IntakeSettings)
class IntakeSettingsAdmin(admin.ModelAdmin):
    form = IntakeSettingsForm
    list_display = ("pipeline", "is_enabled", "match_email", "match_phone", "match_messenger", "conflict_policy",
                    "multi_match_policy", "create_task_after_merge")
    list_filter = ("is_enabled", "conflict_policy", "multi_match_policy")
    filter_horizontal = ("search_stages",)
    fieldsets = (
        (None, {"fields": ("pipeline", "is_enabled")}),
        (_("Duplicate detection"), {"fields": ("match_email", "match_phone", "match_messenger", "lead_fields",
                                                "custom_fields")}),
        (_("Pipeline and stages to search for duplicates"), {"fields": ("search_stages",)}),
        (_("What to do"), {"fields": ("conflict_policy", "multi_match_policy", "create_task_after_merge")}),
    )

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        closed = [stage for stage in form.instance.search_stages.select_related("pipeline") if stage.is_closed]
        if closed:
            self.message_user(
                request,
                _("Won and lost stages are searched (%(stages)s): a customer who comes back after a closed deal "
                  "will be merged into it instead of getting a new, repeat lead. Leave them out unless you mean it.")
                % {"stages": ", ".join(str(stage) for stage in closed)},
                messages.WARNING,
            )


@admin.register(RepeatSalesSettings)
class RepeatSalesSettingsAdmin(admin.ModelAdmin):
    fields = ("enabled", "simple_crm_mode", "default_deal_pipeline")

    def has_add_permission(self, request):
        return not RepeatSalesSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # One row for the whole CRM: the list is skipped and the settings open directly.
        settings_row = RepeatSalesSettings.objects.first()
        if settings_row is None:
            return HttpResponseRedirect(reverse("admin:crm_repeatsalessettings_add"))
        return HttpResponseRedirect(reverse("admin:crm_repeatsalessettings_change", args=[settings_row.pk]))


@admin.register(IncomingRequest)
class IncomingRequestAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "token", "decision", "status_code", "lead_link", "idempotency_key")
    list_filter = ("kind", "decision", "token")
    search_fields = ("idempotency_key", "reason")
    list_select_related = ("token", "lead")
    date_hierarchy = "created_at"
    # The reason in the reader's language (its stored message) instead of the text as written.
    readonly_fields = [
        "reason_text" if field.name == "reason" else field.name
        for field in IncomingRequest._meta.fields
        if field.name != "reason_data"
    ]
    actions = ["revert_update"]

    @admin.display(description=_("reason"))
    def reason_text(self, obj):
        return render(obj.reason_data) if obj.reason_data else obj.reason

    @admin.display(description=_("lead"))
    def lead_link(self, obj):
        if obj.lead_id is None:
            return "\u2014"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:crm_lead_change", args=[obj.lead_id]), obj.lead
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_revert_permission(self, request):
        return request.user.has_perm("crm.change_lead") or request.user.has_perm("crm.change_deal")

    @admin.action(description=_("Revert the update of existing records"), permissions=["revert"])
    def revert_update(self, request, queryset):
        reverted = 0
        for incoming in queryset.filter(decision=IncomingRequest.Decision.UPDATED, reverted_at__isnull=True):
            try:
                incoming_request_revert(request=incoming, user=request.user)
            except (ValidationError, PermissionDenied) as error:
                self.message_user(
                    request,
                    _("%(request)s was not reverted: %(reason)s")
                    % {"request": incoming, "reason": " ".join(getattr(error, "messages", [str(error)]))},
                    messages.ERROR,
                )
            else:
                reverted += 1
        self.message_user(
            request,
            ngettext("%(count)d request reverted.", "%(count)d requests reverted.", reverted) % {"count": reverted},
            messages.SUCCESS if reverted else messages.WARNING,
        )
