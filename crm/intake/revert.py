"""Revert what an incoming request's update did to existing records, from the changes its decision log kept."""
from __future__ import annotations

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.models import IncomingRequest
from dedup.audit import audit_log
from dedup.merge.fields import dump_value, field_label, load_value
from dedup.messages import Message
from dedup.records import record_label
from dedup.signals import records_bulk_saved

# The contact relations a request may have added rows to, by model label, and their name in duplicate control.
_CONTACT_RELATIONS = {"crm.phone": "phones", "crm.email": "emails", "crm.messengerhandle": "messengers"}


def revert_permission_check(*, user, request: IncomingRequest) -> None:
    """Raise PermissionDenied unless the user may change every record the request updated."""
    for change in request.changes or []:
        model = apps.get_model(change["model"])
        codename = f"{model._meta.app_label}.change_{model._meta.model_name}"
        if user is None or not user.is_active or not user.has_perm(codename):
            raise PermissionDenied(
                _("You may not change %(records)s, so you cannot revert this request.")
                % {"records": model._meta.verbose_name_plural}
            )


def _check_unchanged(record, model, change: dict) -> None:
    edited = [
        field_label(model, name)
        for name, values in change["fields"].items()
        if dump_value(model._meta.get_field(name), getattr(record, name)) != values["after"]
    ]
    if edited:
        raise ValidationError(
            _(
                "%(fields)s of %(record)s changed after the request; reverting it would overwrite those edits."
            )
            % {"fields": ", ".join(edited), "record": record_label(record)}
        )


@transaction.atomic
def incoming_request_revert(*, request: IncomingRequest, user) -> IncomingRequest:
    """Put back the values an incoming request's update replaced and remove the contacts and tags it added.

    Refused (ValidationError) when the request changed nothing, was reverted already, or a field it set was
    edited since (the edit would be lost); everything or nothing is reverted.
    """
    request = IncomingRequest.objects.select_for_update().get(pk=request.pk)
    if request.reverted_at is not None:
        raise ValidationError(_("This request was reverted already."))
    if request.decision != IncomingRequest.Decision.UPDATED or not request.changes:
        raise ValidationError(_("This request did not update existing records, so there is nothing to revert."))
    revert_permission_check(user=user, request=request)
    for change in request.changes:
        model = apps.get_model(change["model"])
        record = model._base_manager.select_for_update().filter(pk=change["pk"]).first()
        if record is None:
            raise ValidationError(
                _("%(model)s #%(pk)s was deleted; the request cannot be reverted.")
                % {"model": model._meta.verbose_name, "pk": change["pk"]}
            )
        if getattr(record, "is_archived", False):
            raise ValidationError(
                _("%(record)s was merged into another record since; undo that merge first.")
                % {"record": record_label(record)}
            )
        _check_unchanged(record, model, change)
        names = list(change["fields"])
        for name in names:
            setattr(record, name, load_value(model._meta.get_field(name), change["fields"][name]["before"]))
        if names:
            record.save(update_fields=[*names, "updated_at"] if hasattr(record, "updated_at") else names)
        grown = []
        for label, pks in (change.get("added") or {}).items():
            apps.get_model(label)._base_manager.filter(pk__in=pks).delete()
            grown.append(_CONTACT_RELATIONS.get(label))
        holder = change.get("contact_holder")
        if holder and grown:
            holder_model = apps.get_model(holder["model"])
            records_bulk_saved.send(
                sender=holder_model, model=holder_model, pks=[holder["pk"]], fields=[name for name in grown if name]
            )
        if change.get("tags"):
            record.tags.remove(*change["tags"])
        audit_log(
            user=user,
            records=[record],
            message=Message.of(
                gettext_lazy("Incoming request #%(id)s reverted: the values it replaced are back."), id=request.pk
            ),
        )
    request.reverted_at = timezone.now()
    request.reverted_by = user if getattr(user, "pk", None) else None
    request.save(update_fields=["reverted_at", "reverted_by"])
    return request


