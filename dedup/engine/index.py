"""Keep the match-key index current: on save and delete of records and of the rows their fields read, on bulk
writes (records_bulk_saved), on rule changes (new kinds are backfilled), and a full rebuild."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save

from dedup import registry
from dedup.dispatch import task_send
from dedup.engine import keys, rules
from dedup.models import Condition, IndexedKind, MatchKey, NotDuplicate, Rule
from dedup.registry import EntitySpec
from dedup.signals import records_bulk_saved

logger = logging.getLogger(__name__)

# Records reindexed per batch: one query per loading path per batch, and a few thousand key rows per insert.
BATCH_SIZE = 1000
# Key rows per INSERT: well under SQLite's and PostgreSQL's parameter limits (5 columns a row).
INSERT_BATCH_SIZE = 2000
# Key rows up to which a reindex writes with one statement (a save's few rows); more go through COPY.
SMALL_WRITE_ROWS = 500
# Records up to which a rule change backfills new kinds of keys during the request; above, a Celery task does.
BACKFILL_INLINE_LIMIT = 20000
# The Celery task that backfills new kinds of keys (dedup/tasks.py).
BACKFILL_TASK = "dedup.index_backfill"
# Marks an entity whose plan was synced once (so an entity that needs no kinds is not re-synced on every save).
SYNCED_MARKER = "*"


# ---------------------------------------------------------------------------------------------------------------
# Which kinds are kept


def indexed_kinds(spec: EntitySpec) -> set[str]:
    """Return the kinds the index keeps for this entity; the first call syncs them with the rules."""
    kinds = _stored_kinds(spec)
    if not kinds:
        kinds = sync_plan(spec) | {SYNCED_MARKER}
    return kinds - {SYNCED_MARKER}


def _stored_kinds(spec: EntitySpec) -> set[str]:
    """Read the entity's kinds with plain SQL: every save asks, and the ORM's compiling cost more than the query."""
    connection = connections[router.db_for_read(IndexedKind)]
    quote = connection.ops.quote_name
    opts = IndexedKind._meta
    sql = (
        f"SELECT {quote(opts.get_field('kind').column)} FROM {quote(opts.db_table)} "
        f"WHERE {quote(opts.get_field('entity').column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [spec.key])
        kinds = {kind for (kind,) in cursor.fetchall()}
    _seen_kinds[(connection.alias, spec.key)] = frozenset(kinds)
    return kinds


# The kinds each entity's index keeps (with SYNCED_MARKER), as this process last read them. On PostgreSQL a
# new record's or a save's keys are written by one statement that first checks these are still the stored
# kinds, and writes nothing when they are not (a rule changed in another process): the write is then redone
# with the kinds read afresh. So the common save pays no query for them, and a changed rule is never missed.
_seen_kinds: dict[tuple[str, str], frozenset[str]] = {}


def _kinds_to_write(spec: EntitySpec) -> tuple[set[str], frozenset[str] | None]:
    """Return the kinds to write and the stored kinds the write must find unchanged (None: just read, no check)."""
    connection = connections[router.db_for_write(MatchKey)]
    seen = _seen_kinds.get((connection.alias, spec.key)) if connection.vendor == "postgresql" else None
    if seen:
        return set(seen) - {SYNCED_MARKER}, seen
    return indexed_kinds(spec), None


def _write_if_kinds_unchanged(
    spec: EntitySpec, expected: frozenset[str], rows: list[tuple], *, delete_pks=None, delete_kinds=None
) -> bool:
    """PostgreSQL: in one statement, if the entity's stored kinds are still `expected`, delete the records'
    old keys (of these kinds, or all) and insert `rows`; return whether they were (else nothing is written)."""
    fresh = _write_in_one_statement(spec, rows, delete_pks=delete_pks, delete_kinds=delete_kinds, expected=expected)
    if not fresh:
        _seen_kinds.pop((router.db_for_write(MatchKey), spec.key), None)
    return fresh


def _write_in_one_statement(
    spec: EntitySpec, rows: list[tuple], *, delete_pks=None, delete_kinds=None, expected: frozenset[str] | None = None
) -> bool:
    """Delete the records' old keys (of these kinds, or all) and insert `rows` in one PostgreSQL statement (data-
    modifying WITHs); with `expected`, only if the entity's stored kinds are still those. Return whether written.

    A single statement is atomic on its own: a save pays one round trip for its keys instead of five (BEGIN,
    DELETE, COPY, COMMIT), which is most of the cost of keeping the index current.
    """
    connection = connections[router.db_for_write(MatchKey)]
    quote = connection.ops.quote_name
    table, columns = _quoted(connection)
    entity, record_id, kind = columns[0], columns[1], columns[2]
    parts, params, guard = [], [], ""
    if expected is not None:
        kinds_table = quote(IndexedKind._meta.db_table)
        kind_column = quote(IndexedKind._meta.get_field("kind").column)
        entity_column = quote(IndexedKind._meta.get_field("entity").column)
        parts.append(
            f"checked AS (SELECT COUNT(*) = %s AND COALESCE(BOOL_AND({kind_column} = ANY(%s)), TRUE) AS fresh "
            f"FROM {kinds_table} WHERE {entity_column} = %s)"
        )
        params += [len(expected), sorted(expected), spec.key]
        guard = " AND (SELECT fresh FROM checked)"
    if delete_pks is not None:
        condition = f"{entity} = %s AND {record_id} = ANY(%s)"
        params += [spec.key, list(delete_pks)]
        if delete_kinds is not None:
            condition += f" AND {kind} = ANY(%s)"
            params.append(sorted(delete_kinds))
        parts.append(f"stale AS (DELETE FROM {table} WHERE {condition}{guard})")
    if rows:
        row = "(%s::varchar, %s::bigint, %s::varchar, %s::varchar, %s::varchar)"
        parts.append(
            f"written AS (INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM (VALUES "
            f"{', '.join([row] * len(rows))}) AS new_keys WHERE TRUE{guard})"
        )
        params += [value for key_row in rows for value in key_row]
    if not parts:
        return True
    result = "SELECT fresh FROM checked" if expected is not None else "SELECT TRUE"
    with connection.cursor() as cursor:
        cursor.execute("WITH " + ", ".join(parts) + " " + result, params)
        return bool(cursor.fetchone()[0])


@transaction.atomic
def sync_plan(spec: EntitySpec, *, inline: bool | None = None) -> set[str]:
    """Make the index hold exactly the kinds the entity's rules need: backfill new kinds, drop unused ones.

    New kinds are kept from now on by every save at once; the records already there get them in a backfill,
    right away for a base of up to BACKFILL_INLINE_LIMIT records (or with inline=True), else in a Celery task
    after the rule change commits, so an admin saving a rule never waits minutes.
    """
    needed = rules.plan_kinds(spec)
    present = set(IndexedKind.objects.select_for_update().filter(entity=spec.key).values_list("kind", flat=True))
    present.discard(SYNCED_MARKER)
    added, dropped = needed - present, present - needed
    if dropped:
        IndexedKind.objects.filter(entity=spec.key, kind__in=dropped).delete()
        MatchKey.objects.filter(entity=spec.key, kind__in=dropped).delete()
    if added:
        IndexedKind.objects.bulk_create(
            [IndexedKind(entity=spec.key, kind=kind) for kind in added], ignore_conflicts=True
        )
        if inline is None:
            inline = spec.model._base_manager.count() <= BACKFILL_INLINE_LIMIT
        if inline:
            backfill(spec, added)
        else:
            task_send(BACKFILL_TASK, args=[spec.key, sorted(added)])
    IndexedKind.objects.get_or_create(entity=spec.key, kind=SYNCED_MARKER)
    for key in [key for key in _seen_kinds if key[1] == spec.key]:
        del _seen_kinds[key]
    return needed


def backfill(spec: EntitySpec, kinds: set[str], *, progress: Callable[[int], None] | None = None) -> int:
    """Write these kinds of keys for every record of the entity (replacing any of those kinds); return rows."""
    return reindex(spec, _all_pks(spec), kinds=set(kinds), replace_kinds=True, progress=progress)


# ---------------------------------------------------------------------------------------------------------------
# Writing keys


def reindex(
    spec: EntitySpec,
    pks: Iterable[int],
    *,
    kinds: set[str] | None = None,
    replace_kinds: bool = False,
    new_records: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute the keys of these records in batches (a constant number of queries per batch); return rows written.

    Records that no longer exist or are archived end up with no keys. With replace_kinds, only the given kinds
    are replaced (a backfill); otherwise every key of the records is. new_records: the records were just
    created and have no keys yet, so none are deleted first.
    """
    if kinds is None:
        kinds = indexed_kinds(spec)
    written = 0
    for batch in _batches(pks, batch_size):
        written += _reindex_batch(spec, batch, kinds, replace_kinds=replace_kinds, new_records=new_records)
        if progress:
            progress(len(batch))
    return written


def _reindex_batch(
    spec: EntitySpec, pks: list[int], kinds: set[str], *, replace_kinds: bool, new_records: bool = False
) -> int:
    rows = _key_rows(spec, load_records(spec, pks, kinds), kinds) if kinds else []
    if new_records:
        insert_rows(rows)
        return len(rows)
    connection = connections[router.db_for_write(MatchKey)]
    if connection.vendor == "postgresql" and len(rows) <= SMALL_WRITE_ROWS:
        _write_in_one_statement(spec, rows, delete_pks=pks, delete_kinds=kinds if replace_kinds else None)
        return len(rows)
    # Old keys out and new keys in together: a reader never sees a record without its keys. No savepoint:
    # inside a caller's transaction (a save) this joins it at no extra query.
    with transaction.atomic(savepoint=False):
        stale = MatchKey.objects.filter(entity=spec.key, record_id__in=pks)
        if replace_kinds:
            stale = stale.filter(kind__in=kinds)
        stale.delete()
        insert_rows(rows)
    return len(rows)


def _key_rows(spec: EntitySpec, records: Iterable[models.Model], kinds: set[str]) -> list[tuple]:
    """Return the index rows (entity, record id, kind, key, value) of these records for these kinds."""
    return [
        (spec.key, record.pk, row.kind, row.key, row.value)
        for record in records
        for row in keys.record_rows(spec, record, kinds)
    ]


_COLUMNS = ("entity", "record_id", "kind", "key", "value")


def _quoted(connection) -> tuple[str, list[str]]:
    """Return the index table's name and its _COLUMNS, quoted for this database."""
    quote = connection.ops.quote_name
    return quote(MatchKey._meta.db_table), [quote(MatchKey._meta.get_field(name).column) for name in _COLUMNS]


def _insert_sql(connection, rows) -> tuple[str, list]:
    """Return one INSERT of these key rows (a multi-row VALUES) and its parameters."""
    table, columns = _quoted(connection)
    values = ", ".join([f"({', '.join(['%s'] * len(_COLUMNS))})"] * len(rows))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}", [value for row in rows for value in row]


def insert_rows(rows: list[tuple[str, int, str, str, str]]) -> None:
    """Insert key rows: with COPY on PostgreSQL (a tenth of the cost of INSERTs), one executemany elsewhere.

    Not bulk_create: the ORM compiles every value of every row into SQL, about 50 µs a key row here, which made
    the index most of the cost of a bulk import.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(MatchKey)]
    table, quoted = _quoted(connection)
    columns = ", ".join(quoted)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) <= SMALL_WRITE_ROWS:  # a save's few rows: one INSERT
            cursor.execute(*_insert_sql(connection, rows))
        elif connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(_COLUMNS))
            for start in range(0, len(rows), INSERT_BATCH_SIZE):
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", rows[start : start + INSERT_BATCH_SIZE]
                )


def load_records(spec: EntitySpec, pks: list[int], kinds: set[str]) -> list[models.Model]:
    """Load records with what these kinds read: one query, plus one per related table, whatever the count.

    Generic relations (phones, emails, messengers) are fetched here rather than by prefetch_related, which
    builds a filtered queryset per record and costs milliseconds each; other paths use prefetch_related.
    """
    select, prefetch = keys.loading_paths(spec, kinds)
    generic = [path for path in prefetch if isinstance(_field(spec.model, path), GenericRelation)]
    others = [path for path in prefetch if path not in generic]
    columns = keys.loading_columns(spec, kinds)
    own = None if columns is None else {column for column in columns if column.split("__")[0] not in generic}
    if not select and not others and own is not None and all("__" not in column for column in own):
        # Only the record's own columns (a name, an archive flag): plain SQL, as for generic rows below; the
        # ORM's compiling cost twice the query.
        records = _plain_rows(spec.model, names=sorted(own), key=spec.model._meta.pk, keys=list(pks))
    else:
        # No ordering (the rows are matched by pk) and no select_related() without paths: that form follows
        # every non-null foreign key.
        queryset = spec.model._base_manager.filter(pk__in=pks).order_by().prefetch_related(*others)
        if select:
            queryset = queryset.select_related(*select)
        if own is not None:
            # Only the columns the readers use (select_related paths need their foreign key too).
            queryset = queryset.only(*own, *select)
        records = list(queryset)
    for path in generic:
        relation = _field(spec.model, path)
        content_type = ContentType.objects.get_for_model(spec.model, for_concrete_model=relation.for_concrete_model)
        wanted = None
        if columns is not None:
            prefix = f"{path}__"
            wanted = [relation.object_id_field_name]
            wanted += [column[len(prefix) :] for column in columns if column.startswith(prefix)]
        by_owner: dict[int, list] = defaultdict(list)
        for row in _generic_rows(relation, content_type.pk, pks, wanted):
            by_owner[getattr(row, relation.object_id_field_name)].append(row)
        for record in records:
            # A plain list where registry.related() looks first: building a QuerySet per record and relation
            # to hold it in Django's prefetch cache cost more than loading the rows.
            loaded = record.__dict__.setdefault(registry.LOADED_RELATED_ATTR, {})
            loaded[path] = by_owner.get(record.pk, [])
    return records


def _generic_rows(relation: GenericRelation, content_type_id: int, pks: list, names: list[str] | None) -> list:
    """Return the rows of a generic relation owned by these records, as model instances with these fields only
    (all when None).

    Plain SQL, built from _meta, instead of a QuerySet: compiling the ORM's query took about a millisecond here,
    three times the query itself, and a save reindexes through one such query per relation (phones, emails,
    messengers). Values pass through the same converters the ORM applies.
    """
    model = relation.related_model
    opts = model._meta
    return _plain_rows(
        model,
        names=None if names is None else [opts.pk.attname, *names],
        key=opts.get_field(relation.object_id_field_name),
        keys=pks,
        content_type=(opts.get_field(relation.content_type_field_name), content_type_id),
    )


def _plain_rows(model, *, names: list[str] | None, key: models.Field, keys: list, content_type=None) -> list:
    """Return the model's rows whose `key` field is one of `keys` (and, for a generic relation, whose content
    type is the given one) as instances holding only the fields named (all when None)."""
    opts = model._meta
    alias = router.db_for_read(model)
    connection = connections[alias]
    # In the model's own order: Model.from_db maps a partial row onto concrete_fields in that order.
    wanted = None if names is None else {opts.pk.attname, *(opts.get_field(name).attname for name in names)}
    fields = [field for field in opts.concrete_fields if wanted is None or field.attname in wanted]
    quote = connection.ops.quote_name
    values_of_key = [key.get_db_prep_value(value, connection) for value in keys]
    sql = f"SELECT {', '.join(quote(field.column) for field in fields)} FROM {quote(opts.db_table)} WHERE "
    params: list = []
    if content_type is not None:
        sql += f"{quote(content_type[0].column)} = %s AND "
        params.append(content_type[1])
    if connection.vendor == "postgresql":
        sql, params = sql + f"{quote(key.column)} = ANY(%s)", [*params, values_of_key]
    else:
        sql, params = sql + f"{quote(key.column)} IN ({', '.join(['%s'] * len(values_of_key))})", [
            *params, *values_of_key
        ]
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(opts.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((position, column, found))
    attnames = [field.attname for field in fields]
    rows = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for values in cursor.fetchall():
            if converters:
                values = list(values)
                for position, column, functions in converters:
                    for convert in functions:
                        values[position] = convert(values[position], column, connection)
            rows.append(model.from_db(alias, attnames, values))
    return rows


def _field(model: type[models.Model], path: str):
    try:
        return model._meta.get_field(path)
    except Exception:
        return None


def delete_keys(spec: EntitySpec, pks: Iterable[int]) -> None:
    for batch in _batches(pks, BATCH_SIZE):
        MatchKey.objects.filter(entity=spec.key, record_id__in=batch).delete()


def rebuild(spec: EntitySpec, *, progress: Callable[[int], None] | None = None) -> int:
    """Drop and rebuild the whole index of an entity from its records and rules; return rows written."""
    with transaction.atomic():
        MatchKey.objects.filter(entity=spec.key).delete()
        IndexedKind.objects.filter(entity=spec.key).delete()
        kinds = rules.plan_kinds(spec)
        IndexedKind.objects.bulk_create(
            [IndexedKind(entity=spec.key, kind=kind) for kind in kinds | {SYNCED_MARKER}]
        )
    # Batches commit one by one: a rebuild of a million records does not hold one huge transaction.
    return reindex(spec, _all_pks(spec), kinds=kinds, progress=progress)


def _all_pks(spec: EntitySpec) -> Iterator[int]:
    """Yield every record id of the entity in id order, a page at a time (keyset pagination, no OFFSET)."""
    manager = spec.model._base_manager
    last = None
    while True:
        queryset = manager.order_by("pk")
        if last is not None:
            queryset = queryset.filter(pk__gt=last)
        page = list(queryset.values_list("pk", flat=True)[:10000])
        if not page:
            return
        yield from page
        last = page[-1]


def _batches(pks: Iterable[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for pk in pks:
        batch.append(pk)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------------------------------------
# Signals: which saved row touches which records


class _Watch:
    """What a save or delete of one model means for the index: the records (of which entities) to reindex."""

    def __init__(self):
        self.records: list[EntitySpec] = []
        # (entity spec, function returning the owner pks affected by a changed row, the match fields reading it:
        # only their kinds are rewritten; "" stands for the stage)
        self.related: list[tuple[EntitySpec, Callable[[models.Model], list[int]], frozenset[str]]] = []


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


def _on_save(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw:
        return  # fixtures: rows may point at rows not loaded yet; `dedup_rebuild_index` after loading
    watch = _watches().get(sender)
    if watch is None:
        return
    for spec in watch.records:
        reindex_changed(spec, [instance.pk], update_fields)
    _reindex_owners(watch, instance)


def reindex_changed(spec: EntitySpec, pks: list[int], fields: Iterable[str] | None) -> None:
    """Rewrite the keys of a few records after these fields changed (all their keys when fields is None)."""
    fields = list(fields) if fields else None
    kinds, expected = _kinds_to_write(spec)
    if expected is not None and len(pks) <= SMALL_WRITE_ROWS:
        wanted = kinds_reading(spec, fields, available=kinds) if fields else None
        write = kinds if wanted is None else wanted
        rows = _key_rows(spec, load_records(spec, pks, write), write) if write else []
        if len(rows) <= SMALL_WRITE_ROWS and _write_if_kinds_unchanged(
            spec, expected, rows, delete_pks=pks if write else None, delete_kinds=wanted
        ):
            return
        kinds = indexed_kinds(spec)  # changed meanwhile: read afresh
    wanted = kinds_reading(spec, fields, available=kinds) if fields else None
    if wanted is None:
        reindex(spec, pks, kinds=kinds)
    elif wanted:
        reindex(spec, pks, kinds=wanted, replace_kinds=True)


def kinds_reading(
    spec: EntitySpec, field_names: Iterable[str], *, available: set[str] | None = None
) -> set[str] | None:
    """Return the indexed kinds whose keys a change of these model fields can change (a save with
    update_fields=["first_name"] rewrites the name keys, not the phone keys); None when every kind must be
    rewritten (the archive flag changed, or a field whose columns are not declared)."""
    changed = set(field_names)
    if spec.archived_attr and spec.archived_attr in changed:
        return None
    affected: set[str] = set()
    for kind in indexed_kinds(spec) if available is None else available:
        name, mode = keys.field_of_kind(kind)
        if mode == "stage":
            if spec.stage_field in changed:
                affected.add(kind)
            continue
        if mode == "equal" and not spec.has_field(name):
            if name in changed:  # a plain model field compared for equality (read_equal)
                affected.add(kind)
            continue
        if not spec.has_field(name) or spec.field(name).columns is None:
            return None
        if any(column.split("__")[0] in changed for column in spec.field(name).columns):
            affected.add(kind)
    return affected


def _reindex_owners(watch: _Watch, row: models.Model) -> None:
    """Rewrite, for the records a changed related row belongs to, only the kinds of keys read through that row
    (a phone saved rewrites its owner's phone keys): fewer rows to load and write, none if no rule reads it."""
    for spec, owners, field_names in watch.related:
        pks = owners(row)  # a generic row (a phone) names one owner's entity: the others end here, unqueried
        if not pks:
            continue
        kinds = {kind for kind in indexed_kinds(spec) if keys.field_of_kind(kind)[0] in field_names}
        if kinds:
            reindex(spec, pks, kinds=kinds, replace_kinds=True)


def _on_delete(sender, instance, **kwargs):
    watch = _watches().get(sender)
    if watch is None:
        return
    for spec in watch.records:
        delete_keys(spec, [instance.pk])
        # The pairs marked "not a duplicate" with a deleted record can never be shown again.
        NotDuplicate.objects.filter(Q(low_id=instance.pk) | Q(high_id=instance.pk), entity=spec.key).delete()
    _reindex_owners(watch, instance)


def _on_bulk_saved(sender=None, model=None, pks=(), created=False, records=None, fields=None, **kwargs):
    spec = registry.for_model(model) if model is not None else None
    if spec is None:
        logger.warning("records_bulk_saved for %r, which is not a registered entity", model)
        return
    if created and records is not None:
        index_new_records(spec, records)
    elif fields and not created:
        reindex_changed(spec, list(pks), fields)
    else:
        reindex(spec, list(pks), new_records=created)


def index_new_records(spec: EntitySpec, records: Iterable[models.Model]) -> int:
    """Write the keys of records just created, from the instances as given (their to-many relations attached
    under registry.LOADED_RELATED_ATTR): nothing is read back and there are no old keys to delete."""
    records = list(records)
    kinds, expected = _kinds_to_write(spec)
    if expected is not None and len(records) <= SMALL_WRITE_ROWS:
        rows = _key_rows(spec, records, kinds) if kinds else []
        if len(rows) <= SMALL_WRITE_ROWS and _write_if_kinds_unchanged(spec, expected, rows):
            return len(rows)
        kinds = indexed_kinds(spec)  # changed meanwhile: read afresh
    if not kinds:
        return 0
    rows = _key_rows(spec, records, kinds)
    insert_rows(rows)
    return len(rows)


def _on_rule_change(sender, instance, **kwargs):
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
