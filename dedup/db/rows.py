"""Plain SQL built from the models' _meta, and rows read with it turned into instances converted exactly as the
ORM converts them.

For the hot reads (every intake request, every save's reindex) compiling the ORM's query cost several times the
query itself (2 ms to compile a customer lookup by id with its company, 0.3 ms to run it; about a millisecond
for a generic relation's rows, three times the query). What the ORM would add, the callers spell out: the
conditions, and ``is_archived`` where archived records must not be seen.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.db import connections, models, router
from django.db.models import signals
from django.db.models.base import ModelState

from .vendor import among, arrays


def quote(connection, name: str) -> str:
    """Return a table or column name quoted for this database."""
    return connection.ops.quote_name(name)


def column(connection, model: type[models.Model], name: str, alias: str = "") -> str:
    """Return the quoted column of a model field, prefixed with a table alias when given."""
    quoted = quote(connection, model._meta.get_field(name).column)
    return f"{alias}.{quoted}" if alias else quoted


def table(connection, model: type[models.Model]) -> str:
    """Return the model's quoted table name."""
    return quote(connection, model._meta.db_table)


# Derived from the models' _meta per database and alias, a finite set (kind 2 of the caching rule in
# docs/ARCHITECTURE.md).
@lru_cache(maxsize=None)
def _shape(model: type[models.Model], using: str, alias: str) -> tuple[str, tuple[str, ...], tuple]:
    connection = connections[using]
    fields = model._meta.concrete_fields
    select = ", ".join(f"{alias}.{quote(connection, field.column)}" for field in fields)
    return select, tuple(field.attname for field in fields), _converters_of(fields, alias, connection)


def _converters(field: models.Field, alias: str, connection) -> tuple:
    expression = field.get_col(alias)
    return expression, tuple(connection.ops.get_db_converters(expression) + expression.get_db_converters(connection))


def _converters_of(fields: Sequence[models.Field], alias: str, connection) -> tuple:
    """Return (position, expression, converters) of the fields whose values the ORM converts on reading."""
    found = []
    for position, field in enumerate(fields):
        expression, functions = _converters(field, alias, connection)
        if functions:
            found.append((position, expression, functions))
    return tuple(found)


def _convert(values: Sequence, converters: tuple, connection) -> Sequence:
    if not converters:
        return values
    values = list(values)
    for position, expression, functions in converters:
        for convert in functions:
            values[position] = convert(values[position], expression, connection)
    return values


def converted(model: type[models.Model], name: str, value, *, using: str | None = None):
    """Return one column's value, read with plain SQL, converted as the ORM would (SQLite gives text dates)."""
    connection = connections[using or router.db_for_read(model)]
    expression, functions = _converters(model._meta.get_field(name), model._meta.db_table, connection)
    for convert in functions:
        value = convert(value, expression, connection)
    return value


def select_list(model: type[models.Model], alias: str, *, using: str | None = None) -> str:
    """Return the quoted columns of every concrete field of the model, for SELECT."""
    return _shape(model, using or router.db_for_read(model), alias)[0]


def instance(model: type[models.Model], values: Sequence, alias: str, *, using: str | None = None):
    """Return the model instance of a row selected with ``select_list(model, alias)``."""
    using = using or router.db_for_read(model)
    _select, attnames, converters = _shape(model, using, alias)
    return model.from_db(using, attnames, _convert(values, converters, connections[using]))


def width(model: type[models.Model]) -> int:
    """Return how many columns ``select_list`` gives for the model."""
    return len(model._meta.concrete_fields)


def fetch(model: type[models.Model], sql: str, params: Sequence) -> list[tuple]:
    """Run a SELECT on the model's database and return its rows."""
    with connections[router.db_for_read(model)].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def instances_where(
    model: type[models.Model],
    *,
    key: models.Field,
    keys: Sequence,
    names: Sequence[str] | None = None,
    equal: Sequence[tuple[models.Field, object]] = (),
) -> list[models.Model]:
    """Return the model's rows whose `key` field is one of `keys` (and each field of `equal` has its value), as
    instances holding only the fields named and the primary key (every field when None), converted as the ORM
    converts them."""
    return instances_together([Rows(model, key=key, keys=keys, names=names, equal=equal)])[0]


@dataclass(frozen=True)
class Rows:
    """The rows of one table to read (instances_together): those whose `key` field is one of `keys` and each field
    of `equal` has its value, holding only the fields named and the primary key (every field when None). With
    `via` (a forward foreign key of another model), `keys` are that model's primary keys and the rows are those
    their `via` points at (a customer's company by the customer's id)."""

    model: type[models.Model]
    key: models.Field
    keys: Sequence
    names: Sequence[str] | None = None
    equal: Sequence[tuple[models.Field, object]] = ()
    via: models.Field | None = None


def instances_together(parts: Sequence[Rows]) -> list[list[models.Model]]:
    """Return each part's rows as instances (see Rows), read in one statement however many tables they come from.

    A save's index upkeep reads a record, its company and its phones, emails and messengers: one round trip
    instead of four (bench/README.md, "one save, part by part"). Each part is a SELECT of the UNION ALL, tagged
    with its position; its columns take a block of their own, the other parts' blocks NULLs cast to their columns'
    types (PostgreSQL settles a UNION's column types pairwise, and two untyped NULLs would become text). All parts
    are read from the first part's database.
    """
    using = router.db_for_read(parts[0].model)
    connection = connections[using]
    counted = not arrays(connection)  # a list of placeholders: the statement depends on how many keys
    sql, plans = _together_plan(
        using,
        tuple(
            (part.model, None if part.names is None else tuple(part.names), part.key,
             tuple(field for field, _value in part.equal), part.via, len(part.keys) if counted else None)
            for part in parts
        ),
    )
    params: list = []
    for part in parts:
        params += [value for _field, value in part.equal]
        key = part.via.model._meta.pk if part.via is not None else part.key
        params += among(connection, _prepared(key, part.keys, connection))[1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found: list[list[models.Model]] = [[] for _part in parts]
    builders = [
        (model, start, stop, converters, attnames, _plain_init(model))
        for model, start, stop, converters, attnames in plans
    ]
    if len(parts) == 1:
        model, _start, _stop, converters, attnames, plain = builders[0]
        if plain:
            found[0] = [_built(model, using, attnames, _convert(row, converters, connection)) for row in rows]
        else:
            found[0] = [model.from_db(using, attnames, _convert(row, converters, connection)) for row in rows]
        return found
    for row in rows:
        model, start, stop, converters, attnames, plain = builders[row[0]]
        values = _convert(row[start:stop], converters, connection)
        found[row[0]].append(
            _built(model, using, attnames, values) if plain else model.from_db(using, attnames, values)
        )
    return found


# Derived from the models' _meta per database and shape of the parts, a finite set (kind 2 of the caching rule in
# docs/ARCHITECTURE.md); a save pays no SQL building (a tenth of its index upkeep's CPU).
@lru_cache(maxsize=512)
def _together_plan(using: str, shapes: tuple) -> tuple[str, tuple]:
    """Return the statement of instances_together for parts of these shapes ((model, names, key, equal fields,
    via, key count where the database has no arrays)), and per part (model, first and past-last column, converters,
    attnames)."""
    connection = connections[using]
    fields_of = []
    for model, names, _key, _equal, _via, _count in shapes:
        opts = model._meta
        # In the model's own order: Model.from_db maps a partial row onto concrete_fields in that order.
        wanted = None if names is None else {opts.pk.attname, *(opts.get_field(name).attname for name in names)}
        fields_of.append([field for field in opts.concrete_fields if wanted is None or field.attname in wanted])
    nulls = [[f"CAST(NULL AS {field.cast_db_type(connection)})" for field in fields] for fields in fields_of]
    # One part alone (a rebuild's batches) is read untagged: the rows are the part's.
    tagged = len(shapes) > 1
    selects = []
    for position, ((model, _names, key, equal, via, count), fields) in enumerate(zip(shapes, fields_of)):
        columns = [str(position)] if tagged else []
        for other, other_fields in enumerate(fields_of):
            if other == position:
                columns += [quote(connection, field.column) for field in fields]
            else:
                columns += nulls[other]
        sql = f"SELECT {', '.join(columns)} FROM {table(connection, model)} WHERE "
        for field in equal:
            sql += f"{quote(connection, field.column)} = %s AND "
        test = among(connection, [None] * (count or 1))[0]
        if via is None:
            sql += f"{quote(connection, key.column)} {test}"
        else:
            owner = via.model
            sql += (
                f"{quote(connection, key.column)} IN (SELECT {quote(connection, via.column)} "
                f"FROM {table(connection, owner)} WHERE {quote(connection, owner._meta.pk.column)} {test})"
            )
        selects.append(sql)
    plans, start = [], 1 if tagged else 0
    for (model, *_rest), fields in zip(shapes, fields_of):
        converters = _converters_of(fields, model._meta.db_table, connection)
        plans.append((model, start, start + len(fields), converters, [field.attname for field in fields]))
        start += len(fields)
    return " UNION ALL ".join(selects), tuple(plans)


def _prepared(key: models.Field, keys: Sequence, connection) -> list:
    if isinstance(key, models.IntegerField):
        # Ids (a batch's thousands of them): an int is what preparing would give; anything else is prepared.
        return [value if type(value) is int else key.get_db_prep_value(value, connection) for value in keys]
    return [key.get_db_prep_value(value, connection) for value in keys]


def instance_builder(model: type[models.Model], attnames: Sequence[str], *,
                     using: str | None = None) -> Callable[[Sequence], models.Model]:
    """Return a function building the instance of a row read elsewhere (the values of ``attnames``, already
    converted), the other fields deferred, as from_db builds it: for many rows of one shape."""
    using = using or router.db_for_read(model)
    if _plain_init(model):
        names = list(attnames)
        return lambda values: _built(model, using, names, values)
    order = [field.attname for field in model._meta.concrete_fields if field.attname in set(attnames)]
    places = [list(attnames).index(name) for name in order]
    return lambda values: model.from_db(using, order, [values[place] for place in places])


def _plain_init(model: type[models.Model]) -> bool:
    """Tell whether the model's instances can be built without running Model.__init__: it keeps Django's
    from_db and nothing listens to its pre_init or post_init (then __init__ only stores each value)."""
    return (
        getattr(model.from_db, "__func__", None) is models.Model.from_db.__func__
        and not signals.pre_init.has_listeners(model)
        and not signals.post_init.has_listeners(model)
    )


def _built(model: type[models.Model], using: str, attnames: list[str], values: Sequence) -> models.Model:
    """Return the instance from_db would build from these values (the fields not given deferred): the values
    stored as __init__ stores them, without its per-field work, a third of the cost of loading a rebuild's
    records (bench/bench_rebuild.py)."""
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, values))
    state = instance._state = ModelState()
    state.adding = False
    state.db = using
    return instance
