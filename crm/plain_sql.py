"""Plain SQL for the intake's hot path: SELECTs built once from the models' _meta, rows turned into instances
converted exactly as the ORM converts them.

Every incoming request runs these reads, and for them compiling the ORM's query cost several times the query
itself (2 ms to compile a customer lookup by id with its company, 0.3 ms to run it). What the ORM would add,
the callers spell out: the conditions, and ``is_archived`` where archived records must not be seen.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from django.db import connections, models, router


def quote(connection, name: str) -> str:
    return connection.ops.quote_name(name)


def column(connection, model: type[models.Model], name: str, alias: str = "") -> str:
    """Return the quoted column of a model field, prefixed with a table alias when given."""
    quoted = quote(connection, model._meta.get_field(name).column)
    return f"{alias}.{quoted}" if alias else quoted


def among(connection, values: Sequence) -> tuple[str, list]:
    """Return a membership test for these values and its parameters: one array parameter on PostgreSQL (an
    index condition there, and the same SQL text for any count), a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return "= ANY(%s)", [list(values)]
    return f"IN ({', '.join(['%s'] * len(values))})", list(values)


@lru_cache(maxsize=None)
def _shape(model: type[models.Model], using: str, alias: str) -> tuple[str, tuple[str, ...], tuple]:
    connection = connections[using]
    fields = model._meta.concrete_fields
    select = ", ".join(f"{alias}.{quote(connection, field.column)}" for field in fields)
    converters = []
    for position, field in enumerate(fields):
        expression, found = _converters(field, alias, connection)
        if found:
            converters.append((position, expression, found))
    return select, tuple(field.attname for field in fields), tuple(converters)


def _converters(field: models.Field, alias: str, connection) -> tuple:
    expression = field.get_col(alias)
    return expression, tuple(connection.ops.get_db_converters(expression) + expression.get_db_converters(connection))


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
    connection = connections[using]
    _select, attnames, converters = _shape(model, using, alias)
    values = list(values)
    for position, expression, functions in converters:
        for convert in functions:
            values[position] = convert(values[position], expression, connection)
    return model.from_db(using, attnames, values)


def width(model: type[models.Model]) -> int:
    """Return how many columns ``select_list`` gives for the model."""
    return len(model._meta.concrete_fields)


def fetch(model: type[models.Model], sql: str, params: list) -> list[tuple]:
    with connections[router.db_for_read(model)].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
