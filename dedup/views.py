"""Views of duplicate control outside the model admins: the notification poll the toast script calls, and the
state of a record an open card polls."""
import json

from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from dedup import registry
from dedup.merge import selectors as merge_selectors
from dedup.notifications import (
    POLL_LIMIT,
    notification_payload,
    notifications_mark_popped,
    notifications_mark_read,
    notifications_unread,
)
from dedup.records import record_admin_url


@require_GET
def notifications_poll(request):
    """Return the user's unread notifications newer than ?after=<id> (all unread without it), newest first."""
    raw = request.GET.get("after", "0") or "0"
    if not raw.isdigit():
        return JsonResponse({"error": _("“after” must be a notification id.")}, status=400)
    unread = notifications_unread(request.user, after_id=int(raw)).select_related("job")
    items = [notification_payload(notification) for notification in unread[:POLL_LIMIT]]
    return JsonResponse({"notifications": items, "unread": notifications_unread(request.user).count()})


def _ids(request):
    """Return the ids a POST names ({"ids": [...]} as JSON, or ids=1&ids=2), None for none given, or an error."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return None, JsonResponse({"error": _("The request body is not valid JSON.")}, status=400)
        if not isinstance(body, dict):
            return None, JsonResponse({"error": _("The request body must be a JSON object.")}, status=400)
        ids = body["ids"] if "ids" in body else None  # {"ids": null} is refused below, not read as "all"
        given = "ids" in body
    else:
        ids = request.POST.getlist("ids") or None
        given = ids is not None
    if given:
        if not isinstance(ids, list) or not all(str(pk).isdigit() for pk in ids):
            return None, JsonResponse({"error": _("“ids” must be a list of notification ids.")}, status=400)
        ids = [int(pk) for pk in ids]
    return ids, None


@require_POST
def notifications_popped(request):
    """Note that notifications popped up as toasts (in any of the user's browsers): {"ids": [...]}; they are not
    shown as toasts again, only in the list. Return which of them this call was first to note."""
    ids, error = _ids(request)
    if error is not None:
        return error
    if not ids:
        return JsonResponse({"error": _("“ids” must be a list of notification ids.")}, status=400)
    return JsonResponse({"popped": notifications_mark_popped(user=request.user, ids=ids)})


@require_GET
def record_state(request, content_type_id: int, pk: str):
    """Return the state of a record an open card compares with the one it was drawn with (see record_state)."""
    try:
        content_type = ContentType.objects.get_for_id(content_type_id)
    except ContentType.DoesNotExist:
        return JsonResponse({"error": _("Unknown kind of record.")}, status=404)
    model = content_type.model_class()
    if model is None or registry.for_model(model) is None:
        return JsonResponse({"error": _("Unknown kind of record.")}, status=404)
    opts = model._meta
    if not any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}") for action in ("view", "change")
    ):
        return JsonResponse({"error": _("You may not see these records.")}, status=403)
    try:
        key = opts.pk.to_python(pk)
    except ValidationError:
        return JsonResponse({"error": _("“%(pk)s” is not a record id.") % {"pk": pk}}, status=400)
    state = merge_selectors.record_state(model, key)
    state["url"] = record_admin_url(model, state["merged_into"]) if state["merged_into"] else ""
    return JsonResponse(state)


@require_POST
def notifications_read(request):
    """Mark notifications read: a JSON object {"ids": [...]} or form fields ids=1&ids=2; no ids marks all.

    Only an object (or an empty body) may mean "all": an array, a number or a string is a client's mistake,
    never a request to mark everything read.
    """
    ids, error = _ids(request)
    if error is not None:
        return error
    marked = notifications_mark_read(user=request.user, ids=ids)
    return JsonResponse({"marked": marked, "unread": notifications_unread(request.user).count()})
