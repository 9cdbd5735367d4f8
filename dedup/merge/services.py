"""The merge itself: `records_merge` moves everything of the absorbed records to the survivor, atomically, and
keeps a snapshot that makes it undoable. Background jobs (jobs.py), undo (undo.py) and the sweeper of jobs
whose worker died (sweep.py) run it; checks.py says who may merge what.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from dedup import messages, registry
from dedup.engine.not_duplicates import not_duplicates_carry, not_duplicates_write
from dedup.messages import Message
from dedup.signals import records_bulk_saved

from . import fields as merge_fields
from .checks import _check_current, _merge_input, _mergeable_model
from .errors import MergeError
from .relations import moved_summary, relation_move, relations_for
from .selectors import lock_records

# Where the note about a merge goes on the survivor, unless the entity's registration says otherwise
# (EntitySpec.extra["merge_note"]): the GenericRelation, the text field and the author field of its model.
DEFAULT_MERGE_NOTE = {"relation": "notes", "text_field": "text", "author_field": "author", "message_field": "message"}


def _has_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


@dataclass
class MergeResult:
    """What a merge did."""

    survivor: models.Model
    absorbed: list[models.Model]
    filled: dict[str, int] = field(default_factory=dict)  # {field name: pk the survivor's new value came from}
    moved: dict[str, int] = field(default_factory=dict)  # {"notes": 12, "orders": 3}
    removed_duplicates: int = 0
    note: models.Model | None = None
    snapshot: dict = field(default_factory=dict)


def _note_config(model: type[models.Model]):
    spec = registry.for_model(model)
    config = {**DEFAULT_MERGE_NOTE, **((spec.extra.get("merge_note") or {}) if spec else {})}
    try:
        relation = model._meta.get_field(config["relation"])
    except FieldDoesNotExist:
        return None
    if not isinstance(relation, GenericRelation):
        return None
    return relation, config


def _merge_note_create(*, model, survivor, absorbed, user, content_type) -> models.Model | None:
    """Write "Merged 2 records into this one: ..." on the survivor's timeline, authored by the user."""
    found = _note_config(model)
    if found is None:
        return None
    relation, config = found
    note_model = relation.related_model
    text = Message(messages.MERGE_NOTE, count=len(absorbed), records=list(absorbed))
    values = {
        relation.content_type_field_name: content_type,
        relation.object_id_field_name: survivor.pk,
        config["text_field"]: str(text),
    }
    if config.get("message_field") and _has_field(note_model, config["message_field"]):
        values[config["message_field"]] = text.data  # shown in the reader's language
    if user is not None and config.get("author_field"):
        try:
            note_model._meta.get_field(config["author_field"])
            values[config["author_field"]] = user
        except FieldDoesNotExist:
            pass
    return note_model._base_manager.create(**values)


def _validate_survivor(survivor: models.Model, plan: merge_fields.FieldPlan) -> None:
    """Check the changed fields and the record's own rules (a stage of another pipeline...) before writing."""
    if not plan.values:
        return
    changed = set(plan.changed_fields)
    exclude = [f.name for f in survivor._meta.concrete_fields if f.name not in changed]
    try:
        survivor.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        messages = []
        for name, errors in error.message_dict.items():
            label = merge_fields.field_label(type(survivor), name) if name != "__all__" else ""
            messages.extend(f"{label}: {message}" if label else message for message in errors)
        raise MergeError.of(
            gettext_lazy("The merged record would not be valid: %(errors)s"), errors=" ".join(messages)
        ) from error


@transaction.atomic
def records_merge(
    *,
    survivor: models.Model,
    absorbed: Sequence[models.Model],
    choices: Mapping[str, int] | None = None,
    user=None,
    expected: Mapping | None = None,
    left_out: Sequence[int] = (),
) -> MergeResult:
    """Merge ``absorbed`` into ``survivor`` in one transaction; raise MergeError and change nothing if it can't.

    The records are locked (in pk order) and re-read; any that is gone, archived, merged meanwhile or changed
    since the version in ``expected`` ({pk: updated_at}) refuses the merge. The survivor keeps its values,
    fills its empty fields from the absorbed records in order, or takes what ``choices`` ({field: pk}) says;
    every related row moves to it in bulk; the absorbed records are archived, pointing at it. Records in
    ``left_out`` (unticked by the manager) are stored as not duplicates of the merged records.
    """
    model = _mergeable_model(type(survivor))
    absorbed_pks, choices, expected = _merge_input(model, survivor, absorbed, choices, expected)
    pks = [survivor.pk, *absorbed_pks]

    records = lock_records(model, pks)
    _check_current(model, records, pks, expected)
    survivor = records[survivor.pk]
    absorbed = [records[pk] for pk in absorbed_pks]

    plan = merge_fields.plan_fields(survivor=survivor, absorbed=absorbed, choices=choices)
    fields_by_attname = {f.attname: f for f in model._meta.concrete_fields}
    before = {
        fields_by_attname[attname].name: merge_fields.dump_value(fields_by_attname[attname], getattr(survivor, attname))
        for attname in plan.values
    }
    for attname, value in plan.values.items():
        setattr(survivor, attname, value)
    _validate_survivor(survivor, plan)

    kept_fields = merge_fields.mergeable_fields(model) + [
        model._meta.get_field(merge_fields.ARCHIVED_FIELD),
        model._meta.get_field(merge_fields.MERGED_INTO_FIELD),
    ]
    absorbed_before = {str(record.pk): merge_fields.dump_record(record, kept_fields) for record in absorbed}
    content_type = ContentType.objects.get_for_model(model)
    now = timezone.now()
    try:
        entries = [
            entry
            for relation in relations_for(model)
            if (
                entry := relation_move(
                    relation, survivor_pk=survivor.pk, absorbed_pks=absorbed_pks, content_type_id=content_type.pk
                )
            )
        ]
        archived = {merge_fields.ARCHIVED_FIELD: True, f"{merge_fields.MERGED_INTO_FIELD}_id": survivor.pk}
        if merge_fields.VERSION_FIELD in fields_by_attname:
            archived[merge_fields.VERSION_FIELD] = now
        model._base_manager.filter(pk__in=absorbed_pks).update(**archived)
        # A unique value the survivor takes moves: cleared on its old record before the survivor gets it.
        for pk, values in plan.cleared.items():
            model._base_manager.filter(pk=pk).update(**values)
        for record in absorbed:  # the instances returned say what the rows now say
            for attname, value in {**archived, **plan.cleared.get(record.pk, {})}.items():
                setattr(record, attname, value)
        survivor.save()
        carried = _not_duplicates_carry(model, survivor.pk, absorbed_pks)
        if left_out and registry.for_model(model) is not None:
            carried += not_duplicates_write(entity=model, kept_ids=pks, left_out_ids=left_out, user=user)
        note = _merge_note_create(
            model=model, survivor=survivor, absorbed=absorbed, user=user, content_type=content_type
        )
    except IntegrityError as error:
        raise MergeError.of(
            gettext_lazy("The merge would break a rule of the stored data (%(error)s); nothing was changed."),
            error=str(error),
        ) from error

    after = {
        fields_by_attname[attname].name: merge_fields.dump_value(fields_by_attname[attname], getattr(survivor, attname))
        for attname in plan.values
    }
    snapshot = {
        "version": 1,
        "model": model._meta.label_lower,
        "survivor": survivor.pk,
        "absorbed": absorbed_pks,
        "survivor_fields": {name: {"before": before[name], "after": after[name]} for name in before},
        "absorbed_fields": absorbed_before,
        "relations": entries,
        "not_duplicates": carried,
        "note": {"model": note._meta.label_lower, "pk": note.pk} if note is not None else None,
    }
    _reindex_on_commit(model, pks)
    return MergeResult(
        survivor=survivor,
        absorbed=absorbed,
        filled=dict(plan.sources),
        moved=moved_summary(entries),
        removed_duplicates=sum(len(entry["removed"]) for entry in entries),
        note=note,
        snapshot=snapshot,
    )


def _not_duplicates_carry(model: type[models.Model], survivor_pk, absorbed_pks: Sequence) -> list[list[int]]:
    """Carry the absorbed records' "not a duplicate" pairs to the survivor (entities duplicate control knows)."""
    if registry.for_model(model) is None:
        return []
    return not_duplicates_carry(entity=model, survivor_id=survivor_pk, absorbed_ids=absorbed_pks)


def _reindex_on_commit(model: type[models.Model], pks: Sequence) -> None:
    """Tell the match-key index the records changed in bulk: it re-keys the survivor, drops the archived."""
    transaction.on_commit(partial(records_bulk_saved.send, sender=model, model=model, pks=list(pks)))
