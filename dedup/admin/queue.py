"""Admin of the automatic scan: scan runs with their progress, and the review queue "Duplicate groups"."""
from __future__ import annotations

from collections import defaultdict
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from dedup import registry, review
from dedup.engine.scoring.pairs import pair_scores
from dedup.merge import MERGE_PERMISSION, MergeError
from dedup.messages import key_range_text, render
from dedup.models import MergeJob, Rule
from dedup.models.scan import DuplicateGroup, DuplicateGroupMember, ScanChunk, ScanRun
from dedup.records import record_admin_url, record_label
from dedup.review import SCHEDULED_SCAN_TASK

# Records named in a group's row of the queue; the rest are counted ("and 7 more").
RECORDS_SHOWN = 4
START_PERMISSION = "dedup.add_scanrun"


def _model_of(key: str):
    try:
        return registry.get(key).model
    except KeyError:
        return None  # an entity no longer registered: its groups stay readable, without links


def _entity_label(key: str) -> str:
    try:
        return capfirst(registry.get(key).label_plural)
    except KeyError:
        return key


def _local_next(request) -> str:
    """Return the posted ``next`` if it is a page of this site, else "" (never an open redirect)."""
    target = request.POST.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""


def _run_now(model_admin: admin.ModelAdmin, request) -> HttpResponse:
    """POST only: start a scan for "Run scan now" through the same service as the schedule, then go back."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(START_PERMISSION):
        raise PermissionDenied
    try:
        run = review.scan_start(trigger=ScanRun.Trigger.ADMIN, user=request.user)
    except review.ScanError as error:
        model_admin.message_user(request, str(error), messages.WARNING)
        return HttpResponseRedirect(_local_next(request) or reverse("admin:dedup_scanrun_changelist"))
    run.refresh_from_db(fields=["status", "failure_reason", "failure_data"])
    if run.status == ScanRun.Status.FAILED:  # its message could not be sent: it failed at once, blocking nothing
        model_admin.message_user(request, run.failure_text, messages.ERROR)
    elif run.status == ScanRun.Status.DONE:
        model_admin.message_user(request, _("There is no active duplicate rule, so there was nothing to scan."))
    else:
        model_admin.message_user(
            request,
            _("Scan #%(id)s started; its progress is shown here and the queue fills when it is done.") % {"id": run.pk},
            messages.SUCCESS,
        )
    return HttpResponseRedirect(reverse("admin:dedup_scanrun_change", args=[run.pk]))


def _schedule_url() -> str:
    """Return the admin page of the "Daily duplicate scan" periodic task (time, enabled), or its list."""
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(task=SCHEDULED_SCAN_TASK).order_by("pk").values_list("pk", flat=True).first()
    if task is None:
        return reverse("admin:django_celery_beat_periodictask_changelist")
    return reverse("admin:django_celery_beat_periodictask_change", args=[task])


# --- Scan runs -------------------------------------------------------------------------------------------------


class ScanChunkInline(admin.TabularInline):
    model = ScanChunk
    fields = ["entity", "index", "key_range_text", "status", "attempts", "groups_found", "seconds", "error_text"]
    readonly_fields = fields

    @admin.display(description=_("error"))
    def error_text(self, chunk):
        return chunk.error_text

    @admin.display(description=_("key range"))
    def key_range_text(self, chunk):
        return key_range_text(chunk.key_range)
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = _("parts (chunks handed to the workers)")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ScanRun)
class ScanRunAdmin(admin.ModelAdmin):
    list_display = ["run_title", "status", "trigger", "progress", "started_at", "duration", "summary",
                    "failure_text"]
    list_filter = ["status", "trigger"]
    list_select_related = ["requested_by"]
    date_hierarchy = "started_at"
    fields = ["status", "trigger", "requested_by", "started_at", "finished_at", "duration", "progress", "figures",
              "failure_text"]
    readonly_fields = fields
    inlines = [ScanChunkInline]

    @admin.display(description=_("failure reason"))
    def failure_text(self, run):
        return run.failure_text

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                chunks_total=Count("chunks"),
                chunks_done=Count("chunks", filter=Q(chunks__status=ScanChunk.Status.DONE)),
            )
        )

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("run-now/", self.admin_site.admin_view(self.run_now_view), name="%s_%s_run_now" % info),
        ] + super().get_urls()

    def run_now_view(self, request):
        return _run_now(self, request)

    def has_add_permission(self, request):
        return False  # scans are started by the schedule or "Run scan now", never typed in

    def has_change_permission(self, request, obj=None):
        return False  # a run is a record of what happened

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": _("Scan runs"),
            **(extra_context or {}),
            "running_scan": review.scan_running(),
            "can_start_scan": request.user.has_perm(START_PERMISSION),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "running_scan": run if run is not None and run.status == ScanRun.Status.RUNNING else None,
            "can_start_scan": request.user.has_perm(START_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def has_delete_permission(self, request, obj=None):
        # Old runs may be cleared; a running one is still being written by the workers.
        if obj is not None and obj.status == ScanRun.Status.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("scan"), ordering="-id")
    def run_title(self, run):
        return _("#%(id)s") % {"id": run.pk}

    @admin.display(description=_("progress"))
    def progress(self, run):
        done = getattr(run, "chunks_done", None)
        total = getattr(run, "chunks_total", None)
        if done is None or total is None:
            done, total = review.scan_progress(run)
        if not total:
            return _("planning") if run.status == ScanRun.Status.RUNNING else "\u2014"
        if run.status == ScanRun.Status.RUNNING and done == total:
            label = _("joining")
        else:
            label = _("%(done)s of %(total)s parts") % {"done": done, "total": total}
        return format_html(
            '<progress class="dedup-scan-progress" value="{}" max="{}"></progress> {}', done, total, label
        )

    @admin.display(description=_("time taken"))
    def duration(self, run):
        seconds = run.seconds
        if seconds is None:
            return "\u2014"
        return _("%(seconds)s s") % {"seconds": seconds}

    @admin.display(description=_("found"))
    def summary(self, run):
        rows = []
        for key, figures in (run.stats or {}).items():
            if "groups" in figures:
                rows.append(
                    (
                        _entity_label(key),
                        _("%(groups)s groups in %(records)s records, %(new)s new")
                        % {
                            "groups": figures.get("groups", 0),
                            "records": figures.get("records", 0),
                            "new": figures.get("new", 0),
                        },
                    )
                )
        return format_html_join(mark_safe("<br>"), "{}: {}", rows) if rows else "\u2014"

    @admin.display(description=_("figures per entity"))
    def figures(self, run):
        columns = [
            ("records", _("records scanned")),
            ("groups", _("groups found")),
            ("new", _("new since last run")),
            ("closed", _("closed (stale)")),
            ("auto_merged", _("merged automatically")),
            ("chunks", _("parts")),
            ("seconds", _("worker seconds")),
        ]
        stats = run.stats or {}
        if not stats:
            return "\u2014"
        head = format_html_join("", "<th>{}</th>", ((label,) for _key, label in columns))
        body = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            (
                (
                    _entity_label(key),
                    format_html_join(
                        "", "<td>{}</td>", ((figures.get(name, "\u2014"),) for name, _label in columns)
                    ),
                )
                for key, figures in stats.items()
            ),
        )
        return format_html(
            '<table class="dedup-scan-figures"><thead><tr><th>{}</th>{}</tr></thead><tbody>{}</tbody></table>',
            _("entity"),
            head,
            body,
        )


# --- The review queue ------------------------------------------------------------------------------------------


class EntityFilter(admin.SimpleListFilter):
    title = _("entity")
    parameter_name = "entity"

    def lookups(self, request, model_admin):
        return [(spec.key, capfirst(spec.label_plural)) for spec in registry.all_specs()]

    def queryset(self, request, queryset):
        return queryset.filter(entity=self.value()) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    """Open groups by default: the queue is what is still to be decided."""

    title = _("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request, model_admin):
        return [*DuplicateGroup.Status.choices, (self.ALL, _("All"))]

    def choices(self, changelist):
        value = self.value() or DuplicateGroup.Status.OPEN
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or DuplicateGroup.Status.OPEN
        return queryset if value == self.ALL else queryset.filter(status=value)


class OwnerFilter(admin.SimpleListFilter):
    title = _("responsible manager")
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        owner_ids = DuplicateGroupMember.objects.filter(owner__isnull=False).values("owner_id").distinct()
        return [(user.pk, str(user)) for user in get_user_model().objects.filter(pk__in=owner_ids).order_by("username")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pk__in=DuplicateGroupMember.objects.filter(owner_id=self.value()).values("group_id"))
        return queryset


class RuleFilter(admin.SimpleListFilter):
    title = _("rule")
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        rules = Rule.objects.order_by("entity", "position", "pk")
        return [(rule.pk, f"{_entity_label(rule.entity)}: {rule.display_name}") for rule in rules]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(rules__pk=self.value())
        return queryset


class GroupChangeList(ChangeList):
    """Reads the records named on the page in one query per entity, not one per group."""

    def get_results(self, request):
        super().get_results(request)
        groups = list(self.result_list)
        ids_by_entity: dict[str, set[int]] = defaultdict(set)
        for group in groups:
            group.member_ids = [member.record_id for member in group.members.all()]
            ids_by_entity[group.entity].update(group.member_ids[:RECORDS_SHOWN])
        records: dict[tuple[str, int], object] = {}
        for key, ids in ids_by_entity.items():
            model = _model_of(key)
            if model is None:
                continue
            for pk, record in model._base_manager.in_bulk(list(ids)).items():
                records[(key, pk)] = record
        for group in groups:
            group.records_shown = [(pk, records.get((group.entity, pk))) for pk in group.member_ids[:RECORDS_SHOWN]]


def compare_url(group: DuplicateGroup, ids: list[int] | None = None) -> str:
    """Return the side-by-side screen of the group's records on its entity's admin, or "" when it has none."""
    ids = ids if ids is not None else list(group.members.values_list("record_id", flat=True))
    if not ids:
        return ""
    try:
        opts = registry.get(group.entity).model._meta
        base = reverse(f"admin:{opts.app_label}_{opts.model_name}_compare", args=[ids[0]])
    except (KeyError, NoReverseMatch):
        return ""
    return f"{base}?{urlencode([('records', pk) for pk in ids] + [('priority', ids[0])])}"


@admin.register(DuplicateGroup)
class DuplicateGroupAdmin(admin.ModelAdmin):
    list_display = ["group_title", "entity_label", "size", "records", "reason_list", "newest_activity", "status",
                    "compare_link"]
    list_display_links = ["group_title"]
    list_per_page = 25  # a page that fits a laptop screen a few times over, not thousands of pixels
    list_filter = [StatusFilter, EntityFilter, RuleFilter, OwnerFilter]
    search_fields = ["=members__record_id"]
    search_help_text = _("Find the groups of a record by its ID.")
    ordering = ["-newest_activity", "-id"]
    actions = ["merge_groups", "dismiss_groups", "open_compare"]
    fields = ["entity_label", "status", "size", "member_table", "reason_list", "rule_list", "newest_activity",
              "first_run", "last_run", "created_at", "updated_at", "resolution_text", "resolved_by", "resolved_at",
              "merge_job_link", "auto_merged"]
    readonly_fields = fields

    class Media:
        css = {"all": ["dedup/match.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members")

    def get_changelist(self, request, **kwargs):
        return GroupChangeList

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        wrap = self.admin_site.admin_view
        return [
            path("run-now/", wrap(self.run_now_view), name="%s_%s_run_now" % info),
            path("<path:object_id>/dismiss/", wrap(self.dismiss_view), name="%s_%s_dismiss" % info),
            path("<path:object_id>/merge/", wrap(self.merge_view), name="%s_%s_merge" % info),
        ] + super().get_urls()

    def has_add_permission(self, request):
        return False  # groups come from scans

    def has_merge_permission(self, request):
        return request.user.has_perm(MERGE_PERMISSION)

    @staticmethod
    def _may_change_records(request, group) -> bool:
        model = _model_of(group.entity)
        if model is None:
            return False
        try:
            review.dismiss_permission_check(user=request.user, model=model)
        except PermissionDenied:
            return False
        return True

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": _("Duplicate groups to review"),
            **(extra_context or {}),
            "running_scan": review.scan_running(),
            "can_start_scan": request.user.has_perm(START_PERMISSION),
            "schedule_url": _schedule_url(),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        group = self.get_object(request, object_id)
        can_act = (
            group is not None
            and group.status == DuplicateGroup.Status.OPEN
            and self.has_change_permission(request, group)
        )
        extra_context = {
            "title": _("Duplicate group"),
            **(extra_context or {}),
            "group_compare_url": compare_url(group) if group is not None else "",
            "can_dismiss": can_act and self._may_change_records(request, group),
            "can_merge": can_act and self.has_merge_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    # --- columns ---

    @admin.display(description=_("group"), ordering="-id")
    def group_title(self, group):
        return _("#%(id)s") % {"id": group.pk}

    @admin.display(description=_("entity"), ordering="entity")
    def entity_label(self, group):
        return _entity_label(group.entity)

    @admin.display(description=_("records"))
    def records(self, group):
        shown = getattr(group, "records_shown", None)
        if shown is None:
            return ""
        model = _model_of(group.entity)
        links = []
        for pk, record in shown:
            label = f"#{pk} {record}" if record is not None else _("#%(id)s (deleted)") % {"id": pk}
            url = record_admin_url(model, pk) if model is not None else ""
            links.append(format_html('<a href="{}">{}</a>', url, label) if url else label)
        more = len(group.member_ids) - len(shown)
        if more > 0:
            links.append(_("and %(count)s more") % {"count": more})
        return format_html_join(mark_safe("<br>"), "{}", ((link,) for link in links))

    @admin.display(description=_("resolution"))
    def resolution_text(self, group):
        return group.resolution_text

    @admin.display(description=_("why"))
    def reason_list(self, group):
        return format_html_join(mark_safe("<br>"), "{}", ((render(reason),) for reason in group.reasons or []))

    @admin.display(description=_("rules"))
    def rule_list(self, group):
        return ", ".join(rule.display_name for rule in group.rules.all()) or "\u2014"

    @admin.display(description=_("compare"))
    def compare_link(self, group):
        if group.status != DuplicateGroup.Status.OPEN:
            return ""
        url = compare_url(group, getattr(group, "member_ids", None))
        return format_html('<a class="button" href="{}">{}</a>', url, _("Compare and merge")) if url else ""

    @admin.display(description=_("records"))
    def member_table(self, group):
        model = _model_of(group.entity)
        members = list(group.members.select_related("owner"))
        records = model._base_manager.in_bulk([m.record_id for m in members]) if model is not None else {}
        # The learned model's probability of each record against the group's first one (None: not learned yet).
        found = [records[m.record_id] for m in members if m.record_id in records]
        scores = (pair_scores(group.entity, found[0], found[1:]) if len(found) > 1 else None) or {}
        rows = []
        for member in members:
            record = records.get(member.record_id)
            match = scores.get(member.record_id)
            url = record_admin_url(model, member.record_id) if model is not None else ""
            label = record_label(record) if record is not None else _("#%(id)s (deleted)") % {"id": member.record_id}
            state = ""
            if record is not None and getattr(record, "is_archived", False):
                state = _("archived (merged)")
            rows.append(
                (
                    format_html('<a href="{}">{}</a>', url, label) if url else label,
                    member.record_id,
                    member.owner or "\u2014",
                    state,
                    render_to_string("admin/dedup/_match.html", {"match": match}) if match else "\u2014",
                )
            )
        body = format_html_join("", "<tr><td>{}</td><td>#{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th></th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            _("record"),
            _("ID"),
            _("responsible manager"),
            _("match probability"),
            body,
        )

    @admin.display(description=_("merge"))
    def merge_job_link(self, group):
        if not group.merge_job_id:
            return "\u2014"
        job = MergeJob.objects.filter(pk=group.merge_job_id).first()
        if job is None:
            return "\u2014"
        url = reverse("admin:dedup_mergejob_change", args=[job.pk])
        return format_html('<a href="{}">{}</a> ({})', url, job, job.get_status_display())

    # --- actions ---

    @admin.action(description=_("Merge the selected groups (into their oldest record)"), permissions=["merge"])
    def merge_groups(self, request, queryset):
        queued = self._each_group(
            request, queryset, review.group_merge, refused=(review.ScanError, MergeError, PermissionDenied)
        )
        if queued:
            self.message_user(
                request,
                ngettext(
                    "%(count)d merge queued; you will be notified when it is done.",
                    "%(count)d merges queued; you will be notified when they are done.",
                    queued,
                )
                % {"count": queued},
                messages.SUCCESS,
            )

    @admin.action(description=_("Dismiss: not duplicates"), permissions=["change"])
    def dismiss_groups(self, request, queryset):
        dismissed = self._each_group(
            request, queryset, review.group_dismiss, refused=(review.ScanError, PermissionDenied)
        )
        if dismissed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d group dismissed; its records will not be shown as duplicates again.",
                    "%(count)d groups dismissed; their records will not be shown as duplicates again.",
                    dismissed,
                )
                % {"count": dismissed},
                messages.SUCCESS,
            )

    def _each_group(self, request, queryset, service, *, refused: tuple[type[Exception], ...]) -> int:
        """Call the service on each selected group, reporting each refusal; return how many it accepted."""
        done = 0
        for group in queryset:
            try:
                service(group=group, user=request.user)
            except refused as error:
                self.message_user(request, f"{group}: {error}", messages.ERROR)
            else:
                done += 1
        return done

    @admin.action(description=_("Open on the compare screen"))
    def open_compare(self, request, queryset):
        groups = list(queryset[:2])
        if len(groups) != 1:
            self.message_user(request, _("Choose exactly one group to compare."), messages.WARNING)
            return None
        url = compare_url(groups[0])
        if not url:
            self.message_user(request, _("These records have no compare screen."), messages.WARNING)
            return None
        return HttpResponseRedirect(url)

    # --- one group ---

    def run_now_view(self, request):
        return _run_now(self, request)

    def _group_for_action(self, request, object_id) -> DuplicateGroup:
        group = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, group):
            raise PermissionDenied
        return group

    def dismiss_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        group = self._group_for_action(request, object_id)
        try:
            review.group_dismiss(group=group, user=request.user)
        except (review.ScanError, PermissionDenied) as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(
                request, _("Dismissed: these records will not be shown as duplicates again."), messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:dedup_duplicategroup_changelist"))

    def merge_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        group = self._group_for_action(request, object_id)
        if not self.has_merge_permission(request):
            raise PermissionDenied
        try:
            review.group_merge(group=group, user=request.user)
        except (review.ScanError, MergeError, PermissionDenied) as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:dedup_duplicategroup_change", args=[group.pk]))
        self.message_user(
            request, _("Merge queued; you will be notified when it is done."), messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:dedup_duplicategroup_changelist"))
