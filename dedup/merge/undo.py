"""Undo a merge from its snapshot: every field, row, link and flag back where it was, or a reason why not."""
from __future__ import annotations

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dedup.engine.not_duplicates import not_duplicates_forget

from . import fields as merge_fields
from .errors import MergeError
from .relations import relation_restore
from .selectors import lock_records


def _check_safe(model: type[models.Model], snapshot: dict, records: dict) -> None:
    """Refuse an undo that would lose or overwrite data changed since the merge."""
    survivor_pk = snapshot["survivor"]
    survivor = records.get(survivor_pk)
    if survivor is None:
        raise MergeError.of(
            _("%(model)s #%(pk)s, the record the others were merged into, was deleted; the merge cannot be undone."),
            model=model._meta.verbose_name,
            pk=survivor_pk,
        )
    if getattr(survivor, merge_fields.ARCHIVED_FIELD):
        raise MergeError.of(
            _("%(record)s was itself merged into #%(other)s afterwards; undo that merge first."),
            record=survivor,
            other=getattr(survivor, f"{merge_fields.MERGED_INTO_FIELD}_id") or "?",
        )
    edited = []
    for name, values in snapshot["survivor_fields"].items():
        model_field = model._meta.get_field(name)
        if merge_fields.dump_value(model_field, getattr(survivor, model_field.attname)) != values["after"]:
            edited.append(merge_fields.field_label(model, name))
    if edited:
        raise MergeError.of(
            _(
                "%(fields)s of %(record__gen)s changed after the merge; undoing it would overwrite those edits. "
                "Put the merged value back first if you still want to undo."
            ),
            fields=", ".join(edited),
            record=survivor,
        )
    for pk in snapshot["absorbed"]:
        record = records.get(pk)
        if record is None:
            raise MergeError.of(
                _("%(model)s #%(pk)s, one of the merged records, was deleted; the merge cannot be undone."),
                model=model._meta.verbose_name,
                pk=pk,
            )
        if (
            not getattr(record, merge_fields.ARCHIVED_FIELD)
            or getattr(record, f"{merge_fields.MERGED_INTO_FIELD}_id") != survivor_pk
        ):
            raise MergeError.of(
                _("%(record)s is no longer archived in %(survivor__gen)s; the merge cannot be undone."),
                record=record,
                survivor=survivor,
            )


def snapshot_restore(*, model: type[models.Model], snapshot: dict) -> None:
    """Put everything a merge changed back from its snapshot; call inside a transaction."""
    if not snapshot or snapshot.get("version") != 1:
        raise MergeError(_("This merge has no record of what it changed, so it cannot be undone."))
    survivor_pk = snapshot["survivor"]
    absorbed_pks = snapshot["absorbed"]
    records = lock_records(model, [survivor_pk, *absorbed_pks])
    _check_safe(model, snapshot, records)
    survivor = records[survivor_pk]
    content_type = ContentType.objects.get_for_model(model)

    try:
        note = snapshot.get("note")
        if note:
            apps.get_model(note["model"])._base_manager.filter(pk=note["pk"]).delete()
        for entry in reversed(snapshot["relations"]):
            relation_restore(entry, survivor_pk=survivor_pk, content_type_id=content_type.pk)
        if snapshot.get("not_duplicates"):
            not_duplicates_forget(entity=model, pairs=snapshot["not_duplicates"])

        # The survivor first: a unique value it took goes back to its absorbed record only once it let go.
        for name, values in snapshot["survivor_fields"].items():
            model_field = model._meta.get_field(name)
            setattr(survivor, model_field.attname, merge_fields.load_value(model_field, values["before"]))
        survivor.save()

        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        restored = []
        names: set[str] = set()
        now = timezone.now()
        for pk in absorbed_pks:
            record = records[pk]
            for attname, data in snapshot["absorbed_fields"][str(pk)].items():
                model_field = by_attname[attname]
                setattr(record, attname, merge_fields.load_value(model_field, data))
                names.add(model_field.name)
            if merge_fields.VERSION_FIELD in by_attname:
                setattr(record, merge_fields.VERSION_FIELD, now)
                names.add(merge_fields.VERSION_FIELD)
            restored.append(record)
        model._base_manager.bulk_update(restored, sorted(names))
    except IntegrityError as error:
        raise MergeError.of(
            _("Undoing the merge would break a rule of the stored data (%(error)s); nothing was changed."),
            error=str(error),
        ) from error
