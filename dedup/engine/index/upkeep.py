"""Route saves and deletes to the index: which saved row touches which records' keys (the records themselves,
the owners of a changed phone, the records of a changed stage), bulk writes (records_bulk_saved) and rule
changes (the kinds are synced); and hold a save's upkeep until it is done (upkeep_once), so a record saved with its
rows is indexed once."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save

from dedup import registry
from dedup.models import Condition, NotDuplicate, Rule
from dedup.registry import EntitySpec
from dedup.signals import records_bulk_saved

from .services import index_new_records, reindex, reindex_changed, reindex_read_through, sync_plan
from .write import delete_keys

logger = logging.getLogger(__name__)


class _Watch:
    """What a save or delete of one model means for the index: the records (of which entities) to reindex."""

    def __init__(self):
        self.records: list[EntitySpec] = []
        # (entity spec, function returning the owner pks affected by a changed row, the match fields reading it:
        # only their kinds are rewritten; "" stands for the stage)
        self.related: list[tuple[EntitySpec, Callable[[models.Model], list[int]], frozenset[str]]] = []


# Derived from the registry alone (kind 2 of the caching rule in docs/ARCHITECTURE.md), rebuilt when its
# version changes.
_watch_map: dict[type[models.Model], _Watch] = {}
_watch_version = -1


def _watches() -> dict[type[models.Model], _Watch]:
    global _watch_map, _watch_version
    if _watch_version != registry.version:
        _watch_map = _build_watch_map()
        _watch_version = registry.version
    return _watch_map


def _build_watch_map() -> dict[type[models.Model], _Watch]:
    watches: dict[type[models.Model], _Watch] = defaultdict(_Watch)
    for spec in registry.all_specs():
        watches[spec.model].records.append(spec)
        readers: dict[str, set[str]] = defaultdict(set)
        for match_field in spec.fields:
            for path in match_field.prefetch:
                readers[path].add(match_field.name)
        for path in sorted(readers):
            resolved = _related_owner_resolver(spec, path)
            if resolved is not None:
                watches[resolved[0]].related.append((spec, resolved[1], frozenset(readers[path])))
        if spec.stage_field:
            stage_model = spec.stage_model
            field_name = spec.stage_field
            watches[stage_model].related.append(
                (spec, lambda stage, spec=spec, name=field_name: _owners_by_fk(spec, name, stage.pk), frozenset({""}))
            )
    return dict(watches)


def _related_owner_resolver(spec: EntitySpec, path: str):
    """Return (related model, owners function) for the first step of a loading path, found through _meta."""
    name = path.split("__")[0]
    try:
        field = spec.model._meta.get_field(name)
    except Exception:
        logger.warning("%s: loading path %r is not a field; changes there are not watched", spec.key, path)
        return None
    related_model = field.related_model
    if related_model is None:
        return None
    if isinstance(field, GenericRelation):
        ct_field, id_field = field.content_type_field_name, field.object_id_field_name

        def generic_owners(row, spec=spec, ct_field=ct_field, id_field=id_field):
            content_type_id = getattr(row, f"{ct_field}_id", None)
            if content_type_id != ContentType.objects.get_for_model(spec.model).pk:
                return []
            owner = getattr(row, id_field, None)
            return [owner] if owner is not None else []

        return related_model, generic_owners
    if field.many_to_one or field.one_to_one and field.concrete:
        # A forward foreign key (a customer's company): every record pointing at the changed row.
        return related_model, lambda row, spec=spec, name=name: _owners_by_fk(spec, name, row.pk)
    if field.one_to_many or (field.one_to_one and not field.concrete):
        # A reverse foreign key (rows pointing at the record): the row's own foreign key value.
        attname = field.field.attname
        return related_model, lambda row, attname=attname: [getattr(row, attname)] if getattr(row, attname) else []
    if field.many_to_many:
        return None  # m2m paths change through m2m_changed, which no matched field uses today
    return None


def _owners_by_fk(spec: EntitySpec, name: str, pk) -> list[int]:
    return list(spec.model._base_manager.filter(**{name: pk}).values_list("pk", flat=True))


# The records whose keys the current upkeep_once block holds for its end: {entity key: (spec, pks)}; None outside
# such a block.
_held: ContextVar[dict[str, tuple[EntitySpec, set[int]]] | None] = ContextVar("dedup_index_held", default=None)


@contextmanager
def upkeep_once(using: str | None = None) -> Iterator[None]:
    """Run the block in a transaction, keeping the keys of every record it changes once, at its end, before the
    commit, instead of after each row saved.

    A customer card saved with 3 phones and 2 emails kept the customer's keys six times, a load and a write each
    (6 + 4 x 5 queries on SQLite, 2 + 2 x 5 on PostgreSQL); held, each record changed is reindexed once, whole,
    whatever its rows. The keys are still written inside the transaction, so no reader sees a committed record
    without them. Deleted records lose their keys at once, as outside the block. Nested blocks join the outer one.
    """
    if _held.get() is not None:
        with transaction.atomic(using=using):
            yield
        return
    held: dict[str, tuple[EntitySpec, set[int]]] = {}
    token = _held.set(held)
    try:
        with transaction.atomic(using=using):
            yield
            _held.reset(token)
            token = None
            for spec, pks in held.values():
                reindex_changed(spec, sorted(pks), None)
    finally:
        if token is not None:
            _held.reset(token)


def _hold(held: dict[str, tuple[EntitySpec, set[int]]], spec: EntitySpec, pks) -> None:
    held.setdefault(spec.key, (spec, set()))[1].update(pks)


def _on_save(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw:
        return  # fixtures: rows may point at rows not loaded yet; `dedup_rebuild_index` after loading
    watch = _watches().get(sender)
    if watch is None:
        return
    held = _held.get()
    for spec in watch.records:
        if held is not None:
            _hold(held, spec, [instance.pk])
        else:
            reindex_changed(spec, [instance.pk], update_fields)
    _reindex_owners(watch, instance)


def _reindex_owners(watch: _Watch, row: models.Model) -> None:
    """Rewrite, for the records a changed related row belongs to, only the kinds of keys read through that row
    (a phone saved rewrites its owner's phone keys): fewer rows to load and write, none if no rule reads it.
    In an upkeep_once block the records are held for its end."""
    held = _held.get()
    for spec, owners, field_names in watch.related:
        pks = owners(row)  # a generic row (a phone) names one owner's entity: the others end here, unqueried
        if not pks:
            continue
        if held is not None:
            _hold(held, spec, pks)
        else:
            reindex_read_through(spec, pks, field_names)


def _on_delete(sender, instance, **kwargs):
    watch = _watches().get(sender)
    if watch is None:
        return
    for spec in watch.records:
        delete_keys(spec, [instance.pk])
        # The pairs marked "not a duplicate" with a deleted record can never be shown again.
        NotDuplicate.objects.filter(Q(low_id=instance.pk) | Q(high_id=instance.pk), entity=spec.key).delete()
    _reindex_owners(watch, instance)


def _on_bulk_saved(
    sender=None, model=None, pks=(), created=False, records=None, related=None, fields=None, **kwargs
):
    spec = registry.for_model(model) if model is not None else None
    if spec is None:
        logger.warning("records_bulk_saved for %r, which is not a registered entity", model)
        return
    if created and records is not None:
        for record in records:
            if related and record.pk in related:
                registry.attach_related(record, related[record.pk])
        index_new_records(spec, records)
    elif fields and not created:
        reindex_changed(spec, list(pks), fields)
    else:
        reindex(spec, list(pks), new_records=created)


def _on_rule_change(sender, instance, raw=False, **kwargs):
    if raw:
        return  # rows loaded as they are (loaddata, a test database restored): the index comes with them
    rule = instance if isinstance(instance, Rule) else _rule_of(instance)
    if rule is None or rule.spec is None:
        return
    sync_plan(rule.spec)


def _rule_of(condition: Condition) -> Rule | None:
    try:
        return condition.rule
    except Rule.DoesNotExist:
        return None  # deleted together with its rule; the rule's own signal syncs


def connect() -> None:
    """Connect the index to the signals of the watched models (called once from DedupConfig.ready).

    Per sender, never for every model: a delete signal receiver on a model turns Django's fast bulk deletes of
    that model into row-by-row deletes, which the index's own table (and everyone else's) must not pay.
    """
    records_bulk_saved.connect(_on_bulk_saved, dispatch_uid="dedup.engine.index.bulk_saved")
    for model in (Rule, Condition):
        post_save.connect(_on_rule_change, sender=model, dispatch_uid=f"dedup.engine.index.plan_save.{model.__name__}")
        post_delete.connect(_on_rule_change, sender=model, dispatch_uid=f"dedup.engine.index.plan_delete.{model.__name__}")
    _connect_watched()
    registry.on_register(lambda spec: _connect_watched())


def _connect_watched() -> None:
    for model in _watches():
        uid = f"{model._meta.label_lower}"
        post_save.connect(_on_save, sender=model, dispatch_uid=f"dedup.engine.index.save.{uid}")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"dedup.engine.index.delete.{uid}")
