"""The rules admin ("Duplicate control"): rules with their conditions, what each would flag, not-duplicate pairs."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from dedup import registry
from dedup.admin.rule_forms import ConditionForm, ConditionFormSet, RuleForm, entity_group_label
from dedup.engine import selectors
from dedup.engine.index import builds
from dedup.engine.not_duplicates import not_duplicates_forget_pairs
from dedup.models import Condition, NotDuplicate, Rule
from dedup.records import record_admin_url, record_label


class ConditionInline(admin.TabularInline):
    model = Condition
    form = ConditionForm
    formset = ConditionFormSet
    extra = 0
    min_num = 1
    fields = ["field", "method", "threshold", "fold_email", "position"]
    verbose_name = _("condition")
    verbose_name_plural = _("conditions: all must hold")


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    inlines = [ConditionInline]
    list_display = [
        "display_name", "entity", "kind", "conditions_summary", "scope_summary", "active", "auto_merge", "position"
    ]
    list_display_links = ["display_name"]
    list_editable = ["active"]
    list_filter = ["entity", "kind", "active", "auto_merge"]
    search_fields = ["name"]
    ordering = ["entity", "position", "id"]
    fieldsets = [
        (None, {"fields": ["entity", "name", "kind", "active", "position"]}),
        (
            _("Leads and deals"),
            {"fields": ["stage_ids", "must_equal"], "description": _("Which records take part, and what must be the same.")},
        ),
        (
            _("Orders"),
            {
                "fields": ["time_window_hours"],
                "description": _(
                    "Orders are duplicates only when placed within this window; a repeat purchase is never one."
                ),
            },
        ),
        (_("Daily scan"), {"fields": ["auto_merge"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("conditions")

    @admin.display(description=_("name"), ordering="name")
    def display_name(self, rule):
        return rule.display_name

    @admin.display(description=_("conditions"))
    def conditions_summary(self, rule):
        return _(" and ").join(str(condition) for condition in rule.conditions.all())

    @admin.display(description=_("stages"))
    def scope_summary(self, rule):
        spec = rule.spec
        if spec is None or not spec.stage_field:
            return "\u2014"
        if not rule.stage_ids:
            return _("open stages")
        return ngettext("%(count)d stage", "%(count)d stages", len(rule.stage_ids)) % {"count": len(rule.stage_ids)}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["rule_form_config"] = {
            "labels": {spec.key: entity_group_label(spec) for spec in registry.all_specs()}
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        rule = self.get_object(request, object_id)
        if rule is not None and request.method == "GET":
            extra_context["rule_preview"] = selectors.rule_preview(rule)
            extra_context["rule_entity_label"] = rule.spec.label_plural if rule.spec else rule.entity
            # Until the index holds what the rule needs, the preview says it may be incomplete.
            extra_context["rule_index_state"] = builds.build_state(rule.entity)
            extra_context["rule_builds"] = builds.recent_builds(rule.entity)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        rule = form.instance
        spec = rule.spec
        closed = selectors.closed_stages(spec, rule.stage_ids) if spec else []
        if closed:
            messages.warning(
                request,
                _(
                    "This rule includes won or lost stages (%(stages)s). A customer who comes back after a "
                    "closed deal will have the new request merged into the closed one, and the repeat sale is lost."
                )
                % {"stages": ", ".join(str(stage) for stage in closed)},
            )

    # After a save the rule's own page opens: it shows what the rule would flag before anyone relies on it.
    def response_post_save_add(self, request, obj):
        return HttpResponseRedirect(reverse("admin:dedup_rule_change", args=[obj.pk], current_app=self.admin_site.name))

    def response_post_save_change(self, request, obj):
        return HttpResponseRedirect(reverse("admin:dedup_rule_change", args=[obj.pk], current_app=self.admin_site.name))


class NotDuplicateChangeList(ChangeList):
    """Load the records of the page's pairs in one query per entity, so the list shows names, not ids."""

    def get_results(self, request):
        super().get_results(request)
        wanted: dict[str, set[int]] = {}
        for pair in self.result_list:
            wanted.setdefault(pair.entity, set()).update((pair.low_id, pair.high_id))
        found: dict[tuple[str, int], object] = {}
        for entity, ids in wanted.items():
            try:
                spec = registry.get(entity)
            except KeyError:
                continue
            for record in spec.model._base_manager.filter(pk__in=ids):
                found[(entity, record.pk)] = record
        for pair in self.result_list:
            # The pair's two records (None where one was deleted), for NotDuplicateAdmin.records.
            pair.shown_records = [found.get((pair.entity, pk)) for pk in (pair.low_id, pair.high_id)]


@admin.register(NotDuplicate)
class NotDuplicateAdmin(admin.ModelAdmin):
    """Pairs managers said are not duplicates; deleting a pair forgets it (the records may match again)."""

    list_display = ["records", "entity_label", "created_by", "created_at"]
    list_filter = ["entity"]
    search_fields = ["=low_id", "=high_id"]
    readonly_fields = ["entity_label", "records", "created_by", "created_at"]
    fields = ["entity_label", "records", "created_by", "created_at"]
    list_select_related = ["created_by"]
    actions = ["forget_pairs"]

    def get_changelist(self, request, **kwargs):
        return NotDuplicateChangeList

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "forget" says what deleting a pair means
        return actions

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("records"), ordering="entity")
    def entity_label(self, pair):
        try:
            return registry.get(pair.entity).label_plural
        except KeyError:
            return pair.entity

    @admin.display(description=_("not duplicates of each other"))
    def records(self, pair):
        try:
            spec = registry.get(pair.entity)
        except KeyError:
            return f"#{pair.low_id}, #{pair.high_id}"
        shown = getattr(pair, "shown_records", None)
        if shown is None:  # the change page: one pair
            by_pk = spec.model._base_manager.in_bulk([pair.low_id, pair.high_id])
            shown = [by_pk.get(pair.low_id), by_pk.get(pair.high_id)]
        links = []
        for pk, record in zip((pair.low_id, pair.high_id), shown):
            label = record_label(record) if record is not None else _("%(model)s #%(pk)s (deleted)") % {
                "model": spec.label, "pk": pk
            }
            links.append((record_admin_url(spec.model, pk) or "#", label))
        return format_html_join(" \u2260 ", '<a href="{}">{}</a>', links)

    @admin.action(
        description=_("Forget the selected pairs (they may be shown as duplicates again)"), permissions=["delete"]
    )
    def forget_pairs(self, request, queryset):
        count = not_duplicates_forget_pairs(pairs=list(queryset), user=request.user)
        self.message_user(
            request,
            ngettext("%(count)d pair forgotten.", "%(count)d pairs forgotten.", count) % {"count": count},
            messages.SUCCESS,
        )

    def delete_model(self, request, obj):
        not_duplicates_forget_pairs(pairs=[obj], user=request.user)

    def delete_queryset(self, request, queryset):
        not_duplicates_forget_pairs(pairs=list(queryset), user=request.user)
