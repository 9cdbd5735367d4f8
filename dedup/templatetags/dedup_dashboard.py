"""The dashboard on the admin index: figures from dedup.review.dashboard, drawn by dedup.admin.charts."""
from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dedup.admin import charts
from dedup.merge import MERGE_PERMISSION
from dedup.review.dashboard import MERGE_DAYS, dashboard_figures

register = template.Library()

# Who sees the dashboard: those who review the queue or merge.
VIEW_PERMISSIONS = ("dedup.view_duplicategroup", MERGE_PERMISSION)


@register.inclusion_tag("admin/dedup/dashboard.html", takes_context=True)
def dedup_dashboard(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not any(user.has_perm(permission) for permission in VIEW_PERMISSIONS):
        return {"dashboard": None}
    board = dashboard_figures()
    try:
        queue_url = reverse("admin:dedup_duplicategroup_changelist")
    except NoReverseMatch:
        queue_url = ""
    return {
        "dashboard": board,
        "queue_url": queue_url,
        "charts": [
            {
                "title": _("Duplicates found per scan"),
                "svg": charts.line_chart(
                    board.duplicates_over_time,
                    title=_("Duplicate groups each scan found, per entity"),
                    empty=_("No scan has finished yet."),
                ),
            },
            {
                "title": _("Merges per day (last %(days)d days)") % {"days": MERGE_DAYS},
                "svg": charts.day_bar_chart(
                    board.merges_per_day, title=_("Merges per day"), empty=_("No merges in these days.")
                ),
            },
            {
                "title": _("Merges per manager (last %(days)d days)") % {"days": MERGE_DAYS},
                "svg": charts.hbar_chart(
                    board.merges_per_manager, title=_("Merges per manager"), empty=_("No merges in these days.")
                ),
            },
            {
                "title": _("Top reasons in the review queue"),
                "svg": charts.hbar_chart(
                    board.top_reasons, title=_("Open groups per rule"), empty=_("The review queue is empty.")
                ),
            },
            {
                "title": ngettext(
                    "Open review queue: %(count)d group", "Open review queue: %(count)d groups", board.open_total
                )
                % {"count": board.open_total},
                "svg": charts.hbar_chart(
                    board.open_queue, title=_("Open groups per entity"), empty=_("The review queue is empty.")
                ),
                "url": queue_url,
            },
        ],
    }
