"""Services that change the administrator's value settings (placeholders, custom field types) and rebuild the
index keys the change affects: inline on a small base, else in the background with progress (index.builds)."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from dedup import registry
from dedup.dispatch import task_send
from dedup.engine import counts, index, keys, match_settings
from dedup.engine.index.builds import build_queue, entity_records_count
from dedup.models import CustomFieldType, IndexBuild, MatchSettings
from dedup.registry import CUSTOM_PREFIX, EntitySpec


@transaction.atomic
def placeholders_update(*, text: str) -> MatchSettings:
    """Store the placeholder list (one per line) and rebuild every entity's keys with it."""
    row, _created = MatchSettings.objects.select_for_update().get_or_create(pk=match_settings.SETTINGS_PK)
    entries = sorted(match_settings.parse_placeholders(text))
    row.placeholders = "\n".join(entries)
    row.save(update_fields=["placeholders", "updated_at"])
    match_settings.settings_changed()
    for spec in registry.all_specs():
        _rebuild(spec, None, IndexBuild.Reason.PLACEHOLDERS)
    row.refresh_from_db()
    return row


@transaction.atomic
def custom_field_type_changed(*, entity: str, key: str) -> None:
    """After a custom field's type was saved or deleted: apply it everywhere and rebuild that field's keys.

    A type also puts the field in the scored matcher's schema (and taking it away takes it out), which reads
    its keys: the index's kinds are synced in the same change, the new ones filled with the others in one
    rebuild (in the background on a large base), unused ones dropped.
    """
    match_settings.settings_changed()
    spec = registry.get(entity)
    name = CUSTOM_PREFIX + key
    kinds = {kind for kind in index.indexed_kinds(spec) if keys.field_of_kind(kind)[0] == name}
    inline = entity_records_count(spec) <= index.BACKFILL_INLINE_LIMIT
    index.sync_plan(spec, inline=inline, also=kinds, reason=IndexBuild.Reason.FIELD_TYPE)
    if inline:  # else the rebuild re-finds the figures once done (index.build_run)
        task_send(counts.REBUILD_TASK, args=[spec.key])


def keys_rewrite_after_update() -> None:
    """After an update changed how values are read into keys (a release's normalisers: a surname once taken for a
    title, say), rewrite every entity's keys: now on a small base, else in the background with progress, the
    screens saying so until it is done. Run by the migration that ships such a change."""
    for spec in registry.all_specs():
        if entity_records_count(spec):
            _rebuild(spec, None, IndexBuild.Reason.UPDATE)


def _rebuild(spec: EntitySpec, kinds: Iterable[str] | None, reason: str) -> None:
    """Rewrite these kinds (None: all) of the entity's keys: now on a small base, else in the background."""
    if entity_records_count(spec) <= index.BACKFILL_INLINE_LIMIT:
        wanted = set(kinds) if kinds is not None else index.indexed_kinds(spec)
        if wanted:
            index.backfill(spec, wanted)
        task_send(counts.REBUILD_TASK, args=[spec.key])
    else:
        build_queue(spec=spec, kinds=kinds, reason=reason)


def custom_field_types(entity: str) -> dict[str, str]:
    """Return {custom key: type} of an entity as stored."""
    return dict(CustomFieldType.objects.filter(entity=entity).values_list("key", "type"))
