"""Views of duplicate control outside the model admins: the notification poll the toast script calls."""
import json

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from dedup.notifications import POLL_LIMIT, notification_payload, notifications_mark_read, notifications_unread


@require_GET
def notifications_poll(request):
    """Return the user's unread notifications newer than ?after=<id> (all unread without it), newest first."""
    raw = request.GET.get("after", "0") or "0"
    if not raw.isdigit():
        return JsonResponse({"error": _("“after” must be a notification id.")}, status=400)
    unread = notifications_unread(request.user, after_id=int(raw)).select_related("job")
    items = [notification_payload(notification) for notification in unread[:POLL_LIMIT]]
    return JsonResponse({"notifications": items, "unread": notifications_unread(request.user).count()})


@require_POST
def notifications_read(request):
    """Mark notifications read: a JSON object {"ids": [...]} or form fields ids=1&ids=2; no ids marks all.

    Only an object (or an empty body) may mean "all": an array, a number or a string is a client's mistake,
    never a request to mark everything read.
    """
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": _("The request body is not valid JSON.")}, status=400)
        if not isinstance(body, dict):
            return JsonResponse({"error": _("The request body must be a JSON object.")}, status=400)
        ids = body["ids"] if "ids" in body else None  # {"ids": null} is refused below, not read as "all"
        given = "ids" in body
    else:
        ids = request.POST.getlist("ids") or None
        given = ids is not None
    if given:
        if not isinstance(ids, list) or not all(str(pk).isdigit() for pk in ids):
            return JsonResponse({"error": _("“ids” must be a list of notification ids.")}, status=400)
        ids = [int(pk) for pk in ids]
    marked = notifications_mark_read(user=request.user, ids=ids)
    return JsonResponse({"marked": marked, "unread": notifications_unread(request.user).count()})
