"""Load records with exactly what some kinds of keys read: one query, plus one per related table."""
from __future__ import annotations

from collections import defaultdict

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from dedup import db, registry
from dedup.engine import keys
from dedup.registry import EntitySpec


def load_records(spec: EntitySpec, pks: list[int], kinds: set[str]) -> list[models.Model]:
    """Load records with what these kinds read: one query, plus one per related table, whatever the count; a few
    records (a save's) in one query with their related rows.

    Generic relations (phones, emails, messengers) are fetched here rather than by prefetch_related, which
    builds a filtered queryset per record and costs milliseconds each; other paths use prefetch_related.
    """
    select, prefetch = keys.loading_paths(spec, kinds)
    generic = [path for path in prefetch if isinstance(_field(spec.model, path), GenericRelation)]
    others = [path for path in prefetch if path not in generic]
    columns = keys.loading_columns(spec, kinds)
    own = None if columns is None else {column for column in columns if column.split("__")[0] not in generic}
    pks = list(pks)
    if len(pks) < PLAIN_JOIN_MIN and not others and own is not None and _single_steps(spec.model, select, own):
        return _load_together(spec, pks, own, select, generic, columns)
    if not select and not others and own is not None and all("__" not in column for column in own):
        # Only the record's own columns (a name, an archive flag): plain SQL, as for generic rows below; the
        # ORM's compiling cost twice the query.
        records = db.instances_where(spec.model, names=sorted(own), key=spec.model._meta.pk, keys=pks)
    elif len(pks) >= PLAIN_JOIN_MIN and not others and own is not None and _single_steps(spec.model, select, own):
        records = _load_with_related(spec.model, pks, own, select)
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
    if generic:
        parts = [_generic_part(spec, path, pks, columns) for path in generic]
        _attach_generic(spec, records, generic, [db.instances_together([part])[0] for part in parts])
    return records


def _load_together(
    spec: EntitySpec, pks: list[int], own: set[str], select: list[str], generic: list[str], columns: set[str] | None
) -> list[models.Model]:
    """Load a few records (a save's) with their own columns, the rows of their forward foreign keys and of their
    generic relations, in one statement (db.instances_together): a customer's save read its record and company,
    emails, messengers and phones in four queries, now one (bench/README.md, "one save, part by part")."""
    model = spec.model
    plain = {column for column in own if "__" not in column}
    parts = [db.Rows(model, key=model._meta.pk, keys=pks, names=sorted(plain | set(select)))]
    for path in select:
        field = model._meta.get_field(path)
        through = {column.split("__", 1)[1] for column in own if column.startswith(path + "__")}
        whole = path in own or not through
        target = field.target_field
        names = None if whole else sorted(through | {target.name})
        parts.append(db.Rows(field.related_model, key=target, keys=pks, names=names, via=field))
    parts += [_generic_part(spec, path, pks, columns) for path in generic]
    found = db.instances_together(parts)
    records = found[0]
    for path, rows in zip(select, found[1 : 1 + len(select)]):
        field = model._meta.get_field(path)
        by_key = {getattr(row, field.target_field.attname): row for row in rows}
        for record in records:
            field.set_cached_value(record, by_key.get(getattr(record, field.attname)))
    _attach_generic(spec, records, generic, found[1 + len(select) :])
    return records


def _generic_part(spec: EntitySpec, path: str, pks: list, columns: set[str] | None) -> db.Rows:
    """The rows of a generic relation (phones) owned by these records, with the columns the kinds read (all when
    None): plain SQL built from _meta rather than a QuerySet, whose compiling took about a millisecond, three times
    the query itself. Values pass through the same converters the ORM applies."""
    relation = _field(spec.model, path)
    content_type = ContentType.objects.get_for_model(spec.model, for_concrete_model=relation.for_concrete_model)
    names = None
    if columns is not None:
        prefix = f"{path}__"
        names = [relation.object_id_field_name]
        names += [column[len(prefix) :] for column in columns if column.startswith(prefix)]
    opts = relation.related_model._meta
    return db.Rows(
        relation.related_model,
        key=opts.get_field(relation.object_id_field_name),
        keys=pks,
        names=names,
        equal=[(opts.get_field(relation.content_type_field_name), content_type.pk)],
    )


def _attach_generic(spec: EntitySpec, records: list, generic: list[str], found: list[list]) -> None:
    """Attach each generic relation's rows to their owners (registry.attach_related)."""
    if not generic:
        return
    loaded: dict[int, dict[str, list]] = defaultdict(dict)
    for path, rows in zip(generic, found):
        relation = _field(spec.model, path)
        by_owner: dict[int, list] = defaultdict(list)
        for row in rows:
            by_owner[getattr(row, relation.object_id_field_name)].append(row)
        for record in records:
            loaded[record.pk][path] = by_owner.get(record.pk, [])
    for record in records:
        registry.attach_related(record, loaded[record.pk])


# Records from which a batch's forward foreign keys (a customer's company, a lead's stage) are loaded by plain
# SQL, one query per relation, rather than by the ORM's select_related: compiling the ORM's IN list of a
# rebuild's thousands of ids and building its joined instances cost more than the queries. A save's one record
# keeps the one joined query.
PLAIN_JOIN_MIN = 100


def _single_steps(model: type[models.Model], select: list[str], own: set[str]) -> bool:
    """Tell whether every select path is one forward foreign key and every column is the record's own or one
    of such a key's target."""
    for path in select:
        field = _field(model, path)
        if "__" in path or field is None or not (field.many_to_one or field.one_to_one) or not field.concrete:
            return False
    return all("__" not in column or column.split("__", 1)[0] in select and "__" not in column.split("__", 1)[1]
               for column in own)


def _load_with_related(model: type[models.Model], pks: list, own: set[str], select: list[str]) -> list:
    """Load records with their own columns, then each forward foreign key's rows (with the columns read through
    it, or whole when a path is selected for itself, as a stage is), set on the records as select_related
    would."""
    plain = {column for column in own if "__" not in column}
    records = db.instances_where(model, names=sorted(plain | set(select)), key=model._meta.pk, keys=pks)
    for path in select:
        field = model._meta.get_field(path)
        through = {column.split("__", 1)[1] for column in own if column.startswith(path + "__")}
        whole = path in own or not through
        ids = sorted({value for record in records if (value := getattr(record, field.attname)) is not None})
        target = field.target_field
        rows = {}
        if ids:
            related_rows = db.instances_where(
                field.related_model, names=None if whole else sorted(through | {target.name}), key=target, keys=ids
            )
            rows = {getattr(row, target.attname): row for row in related_rows}
        for record in records:
            field.set_cached_value(record, rows.get(getattr(record, field.attname)))
    return records


def _field(model: type[models.Model], path: str):
    try:
        return model._meta.get_field(path)
    except Exception:
        return None
