"""Admin of value settings: the placeholder list, custom field types, and the index rebuilds they set off."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from dedup import registry
from dedup.engine import match_settings, normalize, value_settings
from dedup.engine.selectors import custom_field_sample
from dedup.models import CustomFieldType, IndexBuild, MatchSettings

# A typed field whose sampled values mostly do not read as its type is a mistake (a "date" holding colours).
TYPE_MISMATCH_SHARE = 0.5


class MatchSettingsForm(forms.ModelForm):
    class Meta:
        model = MatchSettings
        fields = ["placeholders"]
        widgets = {"placeholders": forms.Textarea(attrs={"rows": 20, "cols": 40})}

    def clean_placeholders(self):
        text = self.cleaned_data.get("placeholders") or ""
        too_long = [line.strip() for line in text.splitlines() if len(line.strip()) > match_settings.PLACEHOLDER_MAX_LENGTH]
        if too_long:
            raise forms.ValidationError(
                _("A placeholder is a short value like n/a; this line is too long: %(line)s")
                % {"line": too_long[0][:60]}
            )
        if any(entry == "*" for entry in match_settings.parse_placeholders(text)):
            raise forms.ValidationError(_("A line of only * would make every value a placeholder."))
        return text


@admin.register(MatchSettings)
class MatchSettingsAdmin(admin.ModelAdmin):
    form = MatchSettingsForm
    fields = ["placeholders"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # One row: the list opens it.
        row, _created = MatchSettings.objects.get_or_create(
            pk=match_settings.SETTINGS_PK, defaults={"placeholders": match_settings.default_placeholders_text()}
        )
        return HttpResponseRedirect(reverse("admin:dedup_matchsettings_change", args=[row.pk]))

    def save_model(self, request, obj, form, change):
        value_settings.placeholders_update(text=obj.placeholders)
        messages.info(request, _("The duplicate index is rebuilt with the new placeholder list."))

    def response_change(self, request, obj):
        return HttpResponseRedirect(reverse("admin:dedup_matchsettings_change", args=[obj.pk]))


class CustomFieldTypeForm(forms.ModelForm):
    entity = forms.ChoiceField(label=_("Records"))

    class Meta:
        model = CustomFieldType
        fields = ["entity", "key", "type"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].choices = [
            (spec.key, spec.label_plural) for spec in registry.all_specs() if spec.custom_fields_attr
        ]

    def clean_key(self):
        key = (self.cleaned_data.get("key") or "").strip()
        if not key or ":" in key or len(key) > 100:
            raise forms.ValidationError(_("Type the key of the custom field as stored, e.g. country."))
        return key

    def clean(self):
        cleaned = super().clean()
        entity, key, kind = cleaned.get("entity"), cleaned.get("key"), cleaned.get("type")
        if not (entity and key and kind) or kind in (CustomFieldType.Type.TEXT, CustomFieldType.Type.ADDRESS):
            return cleaned
        spec = registry.get(entity)
        values = [value for value in custom_field_sample(spec, key) if not normalize.is_placeholder(value)]
        if not values:
            return cleaned
        unreadable = [value for value in values if normalize.kind_key(kind, value) is None]
        if len(unreadable) > TYPE_MISMATCH_SHARE * len(values):
            self.add_error(
                "type",
                ngettext(
                    "%(count)d of %(total)d recent values of %(key)s is not a %(type)s (e.g. “%(example)s”).",
                    "%(count)d of %(total)d recent values of %(key)s are not a %(type)s (e.g. “%(example)s”).",
                    len(unreadable),
                )
                % {
                    "count": len(unreadable), "total": len(values), "key": key,
                    "type": CustomFieldType.Type(kind).label, "example": str(unreadable[0])[:40],
                },
            )
        return cleaned


@admin.register(CustomFieldType)
class CustomFieldTypeAdmin(admin.ModelAdmin):
    form = CustomFieldTypeForm
    list_display = ["key", "entity", "type", "updated_at"]
    list_filter = ["entity", "type"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        value_settings.custom_field_type_changed(entity=obj.entity, key=obj.key)
        if change and "key" in form.changed_data and form.initial.get("key"):
            value_settings.custom_field_type_changed(entity=obj.entity, key=form.initial["key"])

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        value_settings.custom_field_type_changed(entity=obj.entity, key=obj.key)

    def delete_queryset(self, request, queryset):
        pairs = list(queryset.values_list("entity", "key"))
        super().delete_queryset(request, queryset)
        for entity, key in pairs:
            value_settings.custom_field_type_changed(entity=entity, key=key)


@admin.register(IndexBuild)
class IndexBuildAdmin(admin.ModelAdmin):
    list_display = ["entity", "reason", "status", "progress", "queued_at", "started_at", "finished_at"]
    list_filter = ["entity", "status", "reason"]
    readonly_fields = ["entity", "reason", "kinds", "status", "total", "done", "queued_at", "started_at",
                       "finished_at", "error"]

    @admin.display(description=_("progress"))
    def progress(self, build):
        return f"{build.done:,} / {build.total:,}".replace(",", "\u202f")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
