"""Duplicate control on the admin's record cards: the badge, the list behind it, compare and merge, history."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import router
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.loader import select_template
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from dedup import audit
from dedup.admin.compare import (
    DuplicateRow,
    MergeSelectionError,
    compare_table,
    duplicate_rows,
    key_fields,
)
from dedup.admin.merge_forms import DuplicateSelectionForm, MergeForm
from dedup.engine import index
from dedup.engine.index.builds import build_state
from dedup.engine.counts import stored_counts, with_stored_duplicates
from dedup.engine.finder import duplicate_counts, duplicates_of
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.engine.scoring.pairs import pair_scores
from dedup.engine.selectors import typed_duplicates, typing_fields
from dedup.messages import Message
from dedup.merge import (
    MERGE_PERMISSION,
    MergeError,
    merge_history,
    merge_job_create,
    merge_undo_request,
    merged_survivor,
    record_stamp,
    related_permission_check,
)
from dedup.merge.fields import VERSION_FIELD
from dedup.models import MergeJob
from dedup.records import record_label
from dedup.registry import for_model

# How often an open card asks whether its record changed (a merge, an undo, an edit elsewhere): two indexed
# queries per open card, so a few seconds is cheap and soon enough for a manager to notice.
CARD_STATE_POLL_MS = 5000
# Records a "Merge selected" list action compares at most: the compare screen shows one column per record.
MERGE_SELECTED_LIMIT = 10

# The match-field kinds next to which the card shows the badge (the seed: "in the Email and Phone fields").
BADGE_KINDS = ("phone", "email")


class HasDuplicatesFilter(admin.SimpleListFilter):
    """Change-list filter: records with or without duplicates, read from the match-key index."""

    title = gettext_lazy("duplicates")
    parameter_name = "has_duplicates"

    def lookups(self, request, model_admin):
        return [("yes", _("Has duplicates")), ("no", _("No duplicates"))]

    def queryset(self, request, queryset):
        # Stored figures (dedup.engine.counts): one indexed lookup, whatever the size of the list.
        if self.value() == "yes":
            return with_stored_duplicates(queryset, True)
        if self.value() == "no":
            return with_stored_duplicates(queryset, False)
        return queryset


@dataclass
class HistoryEntry:
    """One merge job as the history on a card shows it."""

    job: MergeJob
    survivor_label: str
    absorbed_labels: list[str]
    can_undo: bool
    undo_url: str

    @property
    def status(self) -> str:
        return self.job.status

    @property
    def status_label(self) -> str:
        return self.job.get_status_display()

    @property
    def error(self) -> str:
        return self.job.error_text

    @property
    def undone_at(self):
        return self.job.undone_at


@dataclass
class CardContext:
    """What the change page of a record needs for duplicate control."""

    count: int
    duplicates_url: str
    history_url: str
    config: dict
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass
class ListItem:
    """A row of the list behind the badge with its form state."""

    row: DuplicateRow
    url: str
    included: bool
    priority: bool


class DuplicateControlAdminMixin:
    """Mix into the ModelAdmin of a registered entity: badge, duplicates list, compare screen, merge history.

    Put it ahead of ModelAdmin in the bases (``class CustomerAdmin(DuplicateControlAdminMixin, ModelAdmin)``):
    its URLs come before the ModelAdmin's catch-all, and the change form it uses extends whichever one the
    admin would have used otherwise.
    """

    duplicates_list_limit = 50
    dedup_change_form_template = "admin/dedup/card/change_form.html"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Wrap the change form the other bases chose (an export button, an app override) instead of replacing it.
        self.dedup_base_change_form_template = self.change_form_template
        self.change_form_template = self.dedup_change_form_template

    # --- Assets and URLs ---------------------------------------------------------------------------------

    @property
    def media(self):
        return super().media + forms.Media(
            css={"all": ["dedup/card.css", "dedup/match.css"]}, js=["dedup/card.js", "dedup/typing.js"]
        )

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("duplicates-check/", wrap(self.duplicates_check_view), name="%s_%s_duplicates_check" % info),
            path("<path:object_id>/duplicates/", wrap(self.duplicates_view), name="%s_%s_duplicates" % info),
            path("<path:object_id>/compare/", wrap(self.compare_view), name="%s_%s_compare" % info),
            path(
                "<path:object_id>/merge-history/", wrap(self.merge_history_view), name="%s_%s_merge_history" % info
            ),
        ] + super().get_urls()

    def _url(self, name: str, pk) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[quote(pk)]
        )

    # --- Permissions -------------------------------------------------------------------------------------

    def has_merge_permission(self, request, records=()) -> bool:
        """Merging needs the merge permission and the change permission on every record taking part."""
        return request.user.has_perm(MERGE_PERMISSION) and all(
            self.has_change_permission(request, record) for record in records or [None]
        )

    def _record_or_404(self, request, object_id):
        record = self.get_object(request, unquote(object_id))
        if record is None:
            raise Http404(
                _("%(name)s with ID “%(key)s” doesn’t exist. Perhaps it was deleted?")
                % {"name": capfirst(self.opts.verbose_name), "key": unquote(object_id)}
            )
        if not self.has_change_permission(request, record):
            raise PermissionDenied
        return record

    def _redirect_to_card(self, record_or_pk) -> HttpResponseRedirect:
        pk = getattr(record_or_pk, "pk", record_or_pk)
        return HttpResponseRedirect(self._url("change", pk))

    def _redirect_if_merged(self, request, record) -> HttpResponseRedirect | None:
        survivor = merged_survivor(record)
        if survivor is None:
            return None
        messages.warning(
            request,
            Message.of(
                gettext_lazy("%(record)s was merged into %(survivor__ins)s; its duplicates are that record’s now."),
                record=record,
                survivor=survivor,
            ),
        )
        return self._redirect_to_card(survivor)

    # --- The card ----------------------------------------------------------------------------------------

    def _badge_anchors(self) -> list[list[str]]:
        """CSS selectors, per kind, of the phone and email fields or inlines the badge goes next to."""
        spec = for_model(self.model)
        if spec is None:
            return []
        anchors = []
        for kind in BADGE_KINDS:
            selectors = []
            for match_field in spec.fields:
                if match_field.kind != kind:
                    continue
                for prefetch in match_field.prefetch or ():
                    relation = self.model._meta.get_field(prefetch.split("__")[0])
                    if isinstance(relation, GenericRelation):
                        # The prefix Django gives a generic inline formset of this relation.
                        target = relation.related_model._meta
                        selectors.append(
                            "#%s-%s-%s-%s-group"
                            % (
                                target.app_label,
                                target.model_name,
                                relation.content_type_field_name,
                                relation.object_id_field_name,
                            )
                        )
                if not match_field.prefetch:
                    selectors += [f".fieldBox.field-{match_field.name}", f".form-row.field-{match_field.name}"]
            if selectors:
                anchors.append(selectors)
        return anchors

    def _card_context(self, request, object_id) -> CardContext | None:
        if not self.has_change_permission(request):
            return None
        try:
            pk = self.opts.pk.to_python(unquote(object_id))
        except ValidationError:
            return None
        count = duplicate_counts(self.model, [pk]).get(pk, 0)
        duplicates_url = self._url("duplicates", pk)
        content_type_id = ContentType.objects.get_for_model(self.model).pk
        return CardContext(
            count=count,
            duplicates_url=duplicates_url,
            history_url=self._url("merge_history", pk),
            config={
                "count": count,
                "duplicatesUrl": f"{duplicates_url}?{urlencode({'fragment': 1})}",
                "anchors": self._badge_anchors(),
                "contentType": content_type_id,
                "pk": pk,
                # The card polls its record's state and compares it with the one it was drawn with (the stamp
                # is drawn from the record and its merges, render_change_form).
                "stateUrl": reverse("dedup:record_state", args=[content_type_id, pk]),
                "state": "",
                "stateInterval": CARD_STATE_POLL_MS,
                "labels": {
                    "changed": _("This record was changed while it was open; your edits are still here"),
                    "mergedAway": _("This record was merged"),
                    "reload": _("reload"),
                    "loading": _("Loading the duplicates…"),
                    "failed": _("The list could not be loaded. Follow the badge’s link to open it on its own page."),
                },
            },
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        # A card saved with its inline rows (phones, emails, messengers) kept the record's keys once per row saved:
        # held until the save is done and kept once per record, inside the transaction (ModelAdmin's own atomic
        # becomes a savepoint of this one: two queries, against a load and a write per row).
        with index.upkeep_once(using=router.db_for_write(self.model)):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["dedup_card"] = self._card_context(request, object_id)
        extra_context["dedup_typing"] = self._typing_config(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["dedup_typing"] = self._typing_config(request, None)
        return super().add_view(request, form_url, extra_context)

    # --- The warning while typing ------------------------------------------------------------------------

    def _typing_inputs(self) -> dict[str, str]:
        """Return {model path: CSS selector of the form inputs holding it} for the fields checked while typing."""
        spec = for_model(self.model)
        selectors = {}
        for typing_field in typing_fields(spec) if spec else []:
            for column in typing_field.columns:
                name, _sep, attr = column.partition("__")
                try:
                    model_field = self.model._meta.get_field(name)
                except FieldDoesNotExist:  # a column of a property: not a form input
                    continue
                if isinstance(model_field, GenericRelation):
                    target = model_field.related_model._meta
                    prefix = "%s-%s-%s-%s" % (
                        target.app_label,
                        target.model_name,
                        model_field.content_type_field_name,
                        model_field.object_id_field_name,
                    )
                    selectors[column] = f'input[name^="{prefix}-"][name$="-{attr}"]'
                elif model_field.concrete and (not attr or model_field.many_to_one):
                    selectors[column] = f'[name="{name}"]'
        return selectors

    def _typing_config(self, request, object_id) -> dict | None:
        """What typing.js needs: the check URL, the inputs to watch, the labels; None without the permission."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            return None
        inputs = self._typing_inputs()
        if not inputs:
            return None
        spec = for_model(self.model)
        exclude = ""
        if object_id is not None:
            try:
                exclude = str(self.opts.pk.to_python(unquote(object_id)))
            except ValidationError:
                exclude = ""
        fields = {
            typing_field.name: [column for column in typing_field.columns if column in inputs]
            for typing_field in typing_fields(spec)
        }
        return {
            "url": self._url_plain("duplicates_check"),
            "inputs": inputs,
            "fields": {name: columns for name, columns in fields.items() if columns},
            "stage": f'[name="{spec.stage_field}"]' if spec.stage_field else "",
            "exclude": exclude,
            "labels": {
                "possible": _("Possible duplicate:"),
                "open": pgettext("link", "open"),
                "merge": pgettext("link", "merge"),
            },
        }

    def _url_plain(self, name: str) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}")

    def duplicates_check_view(self, request):
        """GET the form's typed values ({model path: value}, repeated for several): JSON of the saved duplicates."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        spec = for_model(self.model)
        watched = self._typing_inputs()
        inputs = {column: request.GET.getlist(column) for column in watched if column in request.GET}
        stage = None
        if spec.stage_field and request.GET.get("stage", "").isdigit():
            stage = spec.stage_model._default_manager.filter(pk=int(request.GET["stage"])).first()
        exclude = request.GET.get("exclude", "")
        exclude_pk = int(exclude) if exclude.isdigit() else None
        found = typed_duplicates(spec, inputs=inputs, stage=stage, exclude_pk=exclude_pk)
        shown = self.get_queryset(request).filter(pk__in=[item.pk for item in found])
        visible = set(shown.values_list("pk", flat=True))
        may_merge = exclude_pk is not None and self.has_merge_permission(request)
        items = []
        for item in found:
            if item.pk not in visible:
                continue  # a record the manager may not see is not named to them
            merge_url = ""
            if may_merge:
                query = urlencode([("records", exclude_pk), ("records", item.pk), ("priority", exclude_pk)])
                merge_url = f"{self._url('compare', exclude_pk)}?{query}"
            items.append(
                {
                    "pk": item.pk,
                    "label": str(item.record),
                    "reasons": item.reasons,
                    "fields": item.fields,
                    "url": self._url("change", item.pk),
                    "merge_url": merge_url,
                }
            )
        return JsonResponse({"duplicates": items})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["dedup_base_change_form"] = self._base_change_form()
        card = context.get("dedup_card")
        if card is not None and obj is not None and change:
            card.history = self._history_entries(request, obj)
            # record_state's stamp from the record and the merges the page has read, instead of reading both again.
            changed_by = [(entry.job.pk, entry.status) for entry in card.history
                          if entry.status in (MergeJob.Status.DONE, MergeJob.Status.UNDONE)]
            card.config["state"] = record_stamp(getattr(obj, VERSION_FIELD, None), max(changed_by, default=None))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def _base_change_form(self):
        base = self.dedup_base_change_form_template
        if isinstance(base, str):
            return base
        opts = self.opts
        return select_template(
            list(base)
            if base
            else [
                f"admin/{opts.app_label}/{opts.model_name}/change_form.html",
                f"admin/{opts.app_label}/change_form.html",
                "admin/change_form.html",
            ]
        )

    # --- The change list ---------------------------------------------------------------------------------

    def get_list_display(self, request):
        # Right after the record's name, where managers look, rather than past the right edge of wide lists.
        columns = list(super().get_list_display(request))
        return [*columns[:1], "duplicates_column", *columns[1:]]

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), HasDuplicatesFilter]

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Offered next to Delete on every registered list, to those who may merge (checked again on the screen).
        if self.has_merge_permission(request) and self.has_change_permission(request):
            action = self.get_action("merge_selected")
            actions[action[1]] = action
        return actions

    @admin.action(description=gettext_lazy("Merge selected %(verbose_name_plural)s"))
    def merge_selected(self, request, queryset):
        """Open the compare screen for the chosen records, the oldest first as the priority record."""
        records = list(queryset.order_by("pk")[: MERGE_SELECTED_LIMIT + 1])
        if len(records) < 2:
            self.message_user(request, _("Choose at least two records to merge."), messages.WARNING)
            return None
        if len(records) > MERGE_SELECTED_LIMIT:
            self.message_user(
                request,
                _("Choose at most %(limit)d records to merge at once.") % {"limit": MERGE_SELECTED_LIMIT},
                messages.WARNING,
            )
            return None
        archived = [record for record in records if getattr(record, "is_archived", False)]
        if archived:
            self.message_user(
                request,
                _("%(records)s already merged into another record; choose live records.")
                % {"records": ", ".join(record_label(record) for record in archived)},
                messages.WARNING,
            )
            return None
        if not self.has_merge_permission(request, records):
            raise PermissionDenied
        priority = records[0]
        query = urlencode([("records", record.pk) for record in records] + [("priority", priority.pk)])
        return HttpResponseRedirect(f"{self._url('compare', priority.pk)}?{query}")

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One batched count for the whole page, kept on the request and on each row (no query per row).
        records = list(changelist.result_list)
        counts = stored_counts(self.model, [record.pk for record in records]) if records else {}
        request.dedup_duplicate_counts = counts
        for record in records:
            record.dedup_duplicate_count = counts.get(record.pk, 0)
        return changelist

    @admin.display(description=gettext_lazy("Duplicates"))
    def duplicates_column(self, record):
        count = getattr(record, "dedup_duplicate_count", None)
        if count is None:  # shown outside the change list: count it alone
            count = stored_counts(self.model, [record.pk]).get(record.pk, 0)
        if not count:
            return ""
        return format_html(
            '<a class="dedup-count-link" href="{}#duplicates" title="{}">{}</a>',
            self._url("change", record.pk),
            ngettext("%(count)d possible duplicate", "%(count)d possible duplicates", count) % {"count": count},
            count,
        )

    # --- The list behind the badge -----------------------------------------------------------------------

    def duplicates_view(self, request, object_id):
        """GET: the list (a fragment for the card's dialog, or a page); POST: remember unticked, go compare."""
        record = self._record_or_404(request, object_id)
        redirect = self._redirect_if_merged(request, record)
        if redirect is not None:
            return redirect
        matches = duplicates_of(record, limit=self.duplicates_list_limit)
        candidate_pks = [match.record.pk for match in matches]
        in_dialog = request.method == "GET" and request.GET.get("fragment") == "1"

        if request.method == "POST":
            form = DuplicateSelectionForm(request.POST, current_pk=record.pk, candidate_pks=candidate_pks)
            if form.is_valid():
                return self._duplicates_selected(request, record, form)
        else:
            form = DuplicateSelectionForm(current_pk=record.pk, candidate_pks=candidate_pks)

        rows = duplicate_rows(record, matches)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Duplicates of %(record)s") % {"record": record_label(record)},
            "original": record,
            "media": self.media,
            "form": form,
            "rows": rows,
            "list_rows": self._list_items(form, rows),
            "current_pk": record.pk,
            "current_label": record_label(record),
            "candidate_count": len(rows) - 1,
            # Keys that did not count because many people share them ("+7 495 …: shared office number").
            "shared_notes": list(getattr(matches, "notes", [])),
            # A rebuild of the index not done yet: the list may miss duplicates, and says so.
            "index_state": build_state(for_model(self.model).key),
            "unticked_count": len(form.unticked_pks) if form.is_bound and hasattr(form, "cleaned_data") else 0,
            "duplicates_url": self._url("duplicates", record.pk),
            "card_url": self._url("change", record.pk),
            "can_merge": self.has_merge_permission(request, [row.record for row in rows]),
            "in_dialog": in_dialog,
        }
        template = "admin/dedup/card/_list.html" if in_dialog else "admin/dedup/card/duplicates.html"
        return TemplateResponse(request, template, context)

    def _list_items(self, form, rows) -> list[ListItem]:
        # The bound fields give the posted state after an error, the defaults otherwise.
        priority = form["priority"].value()
        included = {str(pk) for pk in form["include"].value() or []}
        items = []
        for row in rows:
            items.append(
                ListItem(
                    row=row,
                    url=self._url("change", row.pk),
                    included=row.is_current or str(row.pk) in included,
                    priority=str(row.pk) == str(priority),
                )
            )
        return items

    def _duplicates_selected(self, request, record, form: DuplicateSelectionForm):
        unticked = form.unticked_pks
        comparing = form.cleaned_data["action"] == DuplicateSelectionForm.ACTION_COMPARE
        if comparing and not self.has_merge_permission(request, [record]):
            raise PermissionDenied
        if unticked:
            others = list(self.get_queryset(request).filter(pk__in=unticked))
            if not all(self.has_change_permission(request, other) for other in others):
                raise PermissionDenied
        if unticked and not comparing:
            # "Not duplicates" confirmed: the unticked records are not the current one.
            for other in others:
                not_duplicate_mark(entity=self.model, pair=(record.pk, other.pk), user=request.user)
                audit.not_duplicates_logged(user=request.user, records=[record, other])
            messages.success(
                request,
                ngettext(
                    "%(count)d record will no longer be shown as a duplicate of %(record)s.",
                    "%(count)d records will no longer be shown as duplicates of %(record)s.",
                    len(others),
                )
                % {"count": len(others), "record": record_label(record)},
            )
        if not comparing:
            return self._redirect_to_card(record)
        # Unticked records travel with the comparison: the merge remembers them only once it is confirmed.
        merged = form.merged_pks
        query = urlencode(
            [("records", pk) for pk in merged] + [("priority", merged[0])] + [("left_out", pk) for pk in unticked]
        )
        return HttpResponseRedirect(f"{self._url('compare', record.pk)}?{query}")

    # --- Compare and merge -------------------------------------------------------------------------------

    def compare_view(self, request, object_id):
        """GET: the side-by-side screen; POST: queue the merge and go back to the card."""
        record = self._record_or_404(request, object_id)
        source = request.POST if request.method == "POST" else request.GET
        try:
            pks = [int(pk) for pk in source.getlist("records")]
            priority_pk = int(source.get("priority") or (pks[0] if pks else record.pk))
            left_out = [int(pk) for pk in source.getlist("left_out")]
        except ValueError:
            messages.error(request, _("The records to compare were not understood; open the list again."))
            return self._redirect_to_card(record)
        if record.pk not in pks:
            pks.insert(0, record.pk)
        visible = set(self.get_queryset(request).filter(pk__in=pks).values_list("pk", flat=True))
        if set(pks) - visible:
            messages.error(request, _("Some of the records to compare do not exist or are hidden from you."))
            return self._redirect_to_card(record)
        try:
            table = compare_table(
                self.model,
                pks,
                priority_pk=priority_pk,
                field_order=flatten_fieldsets(self.get_fieldsets(request, record)),
            )
        except MergeSelectionError as error:
            messages.error(request, str(error))
            return self._redirect_to_card(record)
        can_merge = self.has_merge_permission(request, table.records)
        # The learned model's probability of each record against the priority one (None: no model learned yet).
        scores = pair_scores(table.spec.key, table.priority, table.absorbed) or {}
        left_out = list(self.get_queryset(request).filter(pk__in=set(left_out) - set(pks)).values_list("pk", flat=True))
        merge_refusal = ""
        if can_merge:
            try:
                related_permission_check(
                    user=request.user, model=self.model, absorbed_pks=[r.pk for r in table.absorbed]
                )
            except PermissionDenied as denied:
                can_merge, merge_refusal = False, str(denied)

        if request.method == "POST":
            if not can_merge:
                raise PermissionDenied
            form = MergeForm(request.POST, table=table, left_out=left_out)
            if form.is_valid():
                try:
                    job = merge_job_create(
                        user=request.user,
                        survivor=table.priority,
                        absorbed=table.absorbed,
                        choices=form.chosen(),
                        expected=form.expected_raw(),
                        left_out=form.cleaned_data.get("left_out") or [],
                    )
                except (MergeError, ValidationError) as error:
                    messages.error(request, _("The merge was not queued: %(reason)s") % {"reason": _reason(error)})
                else:
                    job.refresh_from_db(fields=["status", "error", "error_data"])
                    if job.status == MergeJob.Status.FAILED and not job.snapshot:  # never sent to the workers
                        messages.error(request, _("The merge was not queued: %(reason)s") % {"reason": job.error_text})
                        return self._redirect_to_card(record)
                    messages.success(
                        request,
                        _("Merge queued; you will be notified when %(record)s is ready.")
                        % {"record": record_label(table.priority)},
                    )
                    return self._redirect_to_card(table.priority)
        else:
            form = MergeForm(table=table, left_out=left_out)

        chosen = form.chosen() if form.is_bound and form.is_valid() else table.default_choices()
        columns = [
            {
                "record": column_record,
                "label": record_label(column_record),
                "url": self._url("change", column_record.pk),
                "is_priority": column_record.pk == table.priority.pk,
                "is_current": column_record.pk == record.pk,
                "match": scores.get(column_record.pk),
                # What tells the records apart at a glance: an order's date, total and items.
                "key_fields": key_fields(column_record),
                "make_priority_url": "%s?%s"
                % (
                    self._url("compare", record.pk),
                    urlencode(
                        [("records", r.pk) for r in table.records]
                        + [("priority", column_record.pk)]
                        + [("left_out", pk) for pk in left_out]
                    ),
                ),
            }
            for column_record in table.records
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Compare and merge %(count)d %(records)s")
            % {"count": len(table.records), "records": self.opts.verbose_name_plural},
            "original": record,
            "media": self.media,
            "table": table,
            "form": form,
            "columns": columns,
            "colspan": len(table.records) + 2,
            "choice_rows": form.choice_rows(),
            "summary": table.summary(chosen),
            "can_merge": can_merge,
            "merge_refusal": merge_refusal,
            "card_url": self._url("change", record.pk),
            "compare_url": self._url("compare", record.pk),
            "compare_config": {"priority": table.priority.pk},
        }
        return TemplateResponse(request, "admin/dedup/card/compare.html", context)

    # --- Merge history and undo ----------------------------------------------------------------------------

    def _history_entries(self, request, record) -> list[HistoryEntry]:
        jobs = list(merge_history(record))
        may_undo = self.has_merge_permission(request, [record])
        history_url = self._url("merge_history", record.pk)
        verbose = capfirst(self.opts.verbose_name)
        return [
            HistoryEntry(
                job=job,
                survivor_label=_("%(model)s #%(pk)s") % {"model": verbose, "pk": job.survivor_id},
                absorbed_labels=[_("%(model)s #%(pk)s") % {"model": verbose, "pk": pk} for pk in job.absorbed_ids],
                can_undo=may_undo and job.status == MergeJob.Status.DONE,
                undo_url=f"{history_url}?{urlencode({'undo': job.pk})}#undo",
            )
            for job in jobs
        ]

    def merge_history_view(self, request, object_id):
        """GET: the record's merges (and the undo confirmation); POST: undo one of them."""
        record = self._record_or_404(request, object_id)
        history = self._history_entries(request, record)
        by_id = {str(entry.job.pk): entry for entry in history}

        if request.method == "POST":
            if not self.has_merge_permission(request, [record]):
                raise PermissionDenied
            entry = by_id.get(request.POST.get("job", ""))
            if entry is None:
                messages.error(request, _("That merge is not in this record’s history."))
                return HttpResponseRedirect(self._url("merge_history", record.pk))
            try:
                job = merge_undo_request(job=entry.job, user=request.user)
            except (MergeError, ValidationError) as error:
                messages.error(request, _("The merge was not undone: %(reason)s") % {"reason": _reason(error)})
                return HttpResponseRedirect(self._url("merge_history", record.pk))
            job.refresh_from_db()
            if job.status == MergeJob.Status.UNDONE:  # a worker in eager mode, or a very quick one
                messages.success(
                    request,
                    ngettext(
                        "Merge undone: %(records)s is back.",
                        "Merge undone: %(records)s are back.",
                        len(entry.absorbed_labels),
                    )
                    % {"records": ", ".join(entry.absorbed_labels)},
                )
            elif job.status == MergeJob.Status.UNDOING:
                messages.success(request, _("Undo queued; you will be notified when it is done."))
            else:  # refused by the worker, or never sent: the notification says why
                messages.error(request, _("The merge was not undone; see your notifications for why."))
            return self._redirect_to_card(entry.job.survivor_id)

        undo_entry = by_id.get(request.GET.get("undo", ""))
        if undo_entry is not None and not undo_entry.can_undo:
            messages.error(request, _("This merge cannot be undone."))
            undo_entry = None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Merge history of %(record)s") % {"record": record_label(record)},
            "original": record,
            "media": self.media,
            "history": history,
            "undo_entry": undo_entry,
            "card_url": self._url("change", record.pk),
            "history_url": self._url("merge_history", record.pk),
        }
        return TemplateResponse(request, "admin/dedup/card/history.html", context)


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)
