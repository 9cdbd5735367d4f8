"""Insert many rows and return their primary keys, without the ORM's per-value SQL compiler.

QuerySet.bulk_create compiles every value through the ORM (about 12 µs a value on this machine): for an
import of 100,000 customers with their phones, emails and tags that is over half a minute of CPU spent only
building SQL. Here each value is converted by its field's own ``get_db_prep_save`` (or not at all for plain
text, numbers, flags and foreign keys) and sent as plain parameters: on SQLite through ``executemany`` (run
in C, and logged once by Django's debug cursor instead of having each value quoted for the log), on
PostgreSQL with COPY (keys drawn from the table's sequence first), or for a few rows as one array per column
(``INSERT ... SELECT * FROM UNNEST(...)``, as Django's bulk_create does).
Like bulk_create, this sends no signals and calls no save(); callers compute what save() would have.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections, models, router, transaction
from django.utils import timezone

# Columns whose Python value is already what the database driver takes (str, int, bool, None).
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.BooleanField,
    models.IntegerField,
    models.BigIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.SmallIntegerField,
)
_PLAIN_KEYS = (models.AutoField, models.BigAutoField, models.SmallAutoField)
# Rows per statement where the database sets no lower limit: big statements, few round trips, bounded memory.
_MAX_ROWS_PER_STATEMENT = 2000
# Rows from which PostgreSQL inserts go through COPY (two round trips: the keys, then the rows).
_COPY_MIN_ROWS = 50
# Rows up to which a PostgreSQL insert is a plain VALUES list: for a few rows, adapting one array per column
# cost psycopg more than the whole insert.
_VALUES_MAX_ROWS = 10


def bulk_insert(
    model: type[models.Model], rows: Iterable[dict[str, Any]], *, ignore_conflicts: bool = False
) -> list[int]:
    """Insert ``rows`` (dicts of attname -> value) and return their new primary keys in the same order.

    Missing columns take the field's default; ``auto_now``/``auto_now_add`` columns missing or None take the
    current time. With ``ignore_conflicts`` rows violating a unique constraint are skipped and no keys are
    returned (as bulk_create does).
    """
    rows = list(rows)
    if not rows:
        return []
    using = router.db_for_write(model)
    connection = connections[using]
    plan = _plan(model, connection)
    values = _prepared(plan, rows)

    postgresql = connection.vendor == "postgresql"
    if postgresql and not ignore_conflicts and len(values) >= _COPY_MIN_ROWS and plan.copyable:
        return _postgresql_copy(connection, model._meta, plan.fields, values)
    if connection.vendor == "sqlite":
        return _sqlite_insert(connection, plan.values_sql(1, ""), values, ignore_conflicts=ignore_conflicts)
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else plan.returning
    if postgresql and len(values) > _VALUES_MAX_ROWS:
        # One array per column (as Django's own bulk_create does there): a handful of parameters instead of
        # one per value, which psycopg would otherwise quote into the statement one by one.
        def statement(chunk: list[list[Any]]) -> tuple[str, list]:
            return plan.head + plan.unnest_sql + tail, [list(column) for column in zip(*chunk)]

        per_statement = _MAX_ROWS_PER_STATEMENT
    else:
        # A few rows (an intake request's lead, phones, note): plain VALUES, the cheapest to send and plan.
        def statement(chunk: list[list[Any]]) -> tuple[str, list]:
            return plan.values_sql(len(chunk), tail), [value for record in chunk for value in record]

        limit = connection.features.max_query_params
        per_statement = min(
            max(1, limit // len(plan.fields)) if limit else _MAX_ROWS_PER_STATEMENT, _MAX_ROWS_PER_STATEMENT
        )
    pks: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_statement):
            cursor.execute(*statement(values[start:start + per_statement]))
            if not ignore_conflicts:
                pks.extend(row[0] for row in cursor.fetchall())
    return pks


def _prepared(plan: _Plan, rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Return each row's column values in the plan's order, prepared for the database, defaults filled in."""
    now = None
    values: list[list[Any]] = []
    for row in rows:
        record = []
        for attname, prepare, default, auto_time in plan.columns:
            value = row.get(attname, _MISSING)
            if value is _MISSING or (value is None and auto_time):
                if auto_time:
                    now = now or prepare(timezone.now())
                    record.append(now)
                else:
                    record.append(default())
            else:
                record.append(value if prepare is _plain else prepare(value))
        values.append(record)
    return values


class _Plan:
    """What inserting into one model's table needs, worked out once per model and database: the columns, how
    each value is prepared, and the fixed parts of the SQL."""

    def __init__(self, model: type[models.Model], connection):
        opts = model._meta
        quote = connection.ops.quote_name
        self.fields = [
            field for field in opts.concrete_fields if not field.primary_key or not isinstance(field, _PLAIN_KEYS)
        ]
        self.columns = []
        for field in self.fields:
            prepare = _preparer(field, connection)
            auto_time = bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))
            self.columns.append((field.attname, prepare, _default_of(field, prepare), auto_time))
        self.copyable = isinstance(opts.pk, _PLAIN_KEYS) and opts.pk not in self.fields
        self.head = f"INSERT INTO {quote(opts.db_table)} ({', '.join(quote(field.column) for field in self.fields)}) "
        self.returning = f" RETURNING {quote(opts.pk.column)}"
        self.placeholder = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        if connection.vendor == "postgresql":
            db_types = [field.db_type(connection).split("(")[0] for field in self.fields]
            self.unnest_sql = "SELECT * FROM UNNEST(" + ", ".join(f"(%s)::{db_type}[]" for db_type in db_types) + ")"

    def values_sql(self, rows: int, tail: str) -> str:
        """Return the INSERT of this many rows as a VALUES list, followed by `tail` (RETURNING, ON CONFLICT)."""
        return self.head + "VALUES " + ", ".join([self.placeholder] * rows) + tail


_plans: dict[tuple, _Plan] = {}


def _plan(model: type[models.Model], connection) -> _Plan:
    key = (model, connection.alias)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(model, connection)
    return plan


def _postgresql_copy(connection, opts, fields: list[models.Field], values: list[list[Any]]) -> list[int]:
    """Insert with COPY, the keys drawn from the table's sequence first: psycopg sends COPY rows from C, where the
    arrays of an UNNEST insert were adapted value by value in Python (a third of an import's database work)."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in [opts.pk, *fields])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [opts.db_table, opts.pk.column, len(values)],
        )
        pks = [row[0] for row in cursor.fetchall()]
        with cursor.cursor.copy(f"COPY {quote(opts.db_table)} ({columns}) FROM STDIN") as copy:
            for pk, record in zip(pks, values, strict=True):
                copy.write_row([pk, *record])
    return pks


def _sqlite_insert(connection, sql: str, values: list[list[Any]], *, ignore_conflicts: bool) -> list[int]:
    """Insert with executemany: SQLite runs it in C, and Django's debug log records it once, not per value."""
    # In a transaction even when the caller has none: the rows' ids are consecutive only if no other
    # connection can write between them.
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        if ignore_conflicts:
            cursor.executemany(sql + " ON CONFLICT DO NOTHING", values)
            return []
        cursor.executemany(sql, values)
        inserted = cursor.rowcount
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
    if inserted != len(values):
        raise RuntimeError(f"Inserted {inserted} rows of {len(values)}")  # pragma: no cover (guards the next line)
    # SQLite gives an AUTOINCREMENT table's new rows the next ids in turn, so the last id tells them all.
    return list(range(last - len(values) + 1, last + 1))


def instance_values(instance: models.Model) -> dict[str, Any]:
    """Return an unsaved instance's column values by attname, foreign keys read from related objects saved since."""
    values = {}
    for field in instance._meta.concrete_fields:
        if field.primary_key and instance.pk is None:
            continue
        if field.is_relation and field.many_to_one and field.is_cached(instance):
            related = field.get_cached_value(instance)
            values[field.attname] = related.pk if related is not None else None
        else:
            values[field.attname] = getattr(instance, field.attname)
    return values


def bulk_insert_instances(model: type[models.Model], instances: list[models.Model]) -> None:
    """Insert unsaved instances as bulk_create does, setting their primary keys (and their empty
    ``auto_now``/``auto_now_add`` times, as save() would)."""
    if not instances:
        return
    _fill_auto_times(model, instances)
    _set_keys(model, instances, bulk_insert(model, [instance_values(instance) for instance in instances]))


def insert_together(groups: Iterable[tuple[type[models.Model], list[models.Model]]]) -> None:
    """Insert unsaved instances of several models, setting their primary keys: on PostgreSQL in one statement
    (one data-modifying WITH per model), so a request's last few rows cost one round trip; elsewhere one
    insert per model. For a few rows each (VALUES lists); bulk_insert_instances is for many."""
    groups = [(model, list(instances)) for model, instances in groups if instances]
    connection = connections[router.db_for_write(groups[0][0])] if groups else None
    if connection is None or connection.vendor != "postgresql" or len(groups) == 1:
        for model, instances in groups:
            bulk_insert_instances(model, instances)
        return
    parts, selects, params = [], [], []
    for position, (model, instances) in enumerate(groups):
        _fill_auto_times(model, instances)
        plan = _plan(model, connection)
        values = _prepared(plan, [instance_values(instance) for instance in instances])
        parts.append(f"w{position} AS ({plan.values_sql(len(values), plan.returning)})")
        selects.append(f"SELECT {position}, {connection.ops.quote_name(model._meta.pk.column)} FROM w{position}")
        params.extend(value for record in values for value in record)
    with connection.cursor() as cursor:
        cursor.execute("WITH " + ", ".join(parts) + " " + " UNION ALL ".join(selects), params)
        rows = cursor.fetchall()
    # RETURNING gives each table's rows in the order of its VALUES list (as bulk_create relies on).
    for position, (model, instances) in enumerate(groups):
        _set_keys(model, instances, [pk for group, pk in rows if group == position])


def _fill_auto_times(model: type[models.Model], instances: list[models.Model]) -> None:
    now = timezone.now()
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            for instance in instances:
                if getattr(instance, field.attname) is None:
                    setattr(instance, field.attname, now)


def _set_keys(model: type[models.Model], instances: list[models.Model], pks: list[int]) -> None:
    using = router.db_for_write(model)
    for instance, pk in zip(instances, pks, strict=True):
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = using


_MISSING = object()


def _plain(value: Any) -> Any:
    return value


def _default_of(field: models.Field, prepare: Callable[[Any], Any]) -> Callable[[], Any]:
    """Return what a missing column gets (auto_now columns get the current time from the caller)."""
    if field.has_default():
        if callable(field.default):  # dict, timezone.now...: a fresh value per row
            return lambda: prepare(field.get_default())
        value = prepare(field.get_default())
        return lambda: value
    return lambda: None


def _preparer(field: models.Field, connection) -> Callable[[Any], Any]:
    if type(field) in _PLAIN_FIELDS or type(field) in _PLAIN_KEYS:
        return _plain
    if isinstance(field, models.ForeignKey) and type(field.target_field) in (_PLAIN_KEYS + _PLAIN_FIELDS):
        return _plain
    return lambda value: field.get_db_prep_save(value, connection=connection)
