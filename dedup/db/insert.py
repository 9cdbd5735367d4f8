"""Insert many rows without the ORM's per-value SQL compiler: the one home of COPY and bulk inserts.

QuerySet.bulk_create compiles every value through the ORM (about 12 µs a value, 50 µs a match-key row on this
machine): for an import of 100,000 customers with their phones, emails and tags that is over half a minute of
CPU spent only building SQL, and it made the index most of the cost of a bulk import. Here each value is
converted by its field's own ``get_db_prep_save`` (JSON, dates, decimals; nothing at all for plain text,
numbers, flags and foreign keys) and sent as plain parameters: on SQLite through ``executemany`` (run in C, and
logged once by Django's debug cursor instead of having each value quoted for the log), on PostgreSQL with COPY
(keys drawn from the table's sequence first when they are wanted), or for a few rows as one VALUES list, or as
one array per column (``INSERT ... SELECT * FROM UNNEST(...)``, as Django's bulk_create does).

Missing columns take the field's default (a fresh one per row when it is callable); ``auto_now`` and
``auto_now_add`` columns missing or None take the current time; columns with only a database default
(``db_default``) are left to the database when no row gives them. Like bulk_create, nothing here sends
signals or calls save(): callers compute what save() would have and say what they wrote
(``dedup.signals.records_bulk_saved``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models, router, transaction
from django.utils import timezone

from .vendor import arrays, copies, inserts_by_executemany, one_statement_writes

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
# Rows from which inserts go through COPY where the database has it (with keys: two round trips, the keys
# then the rows). Callers writing no keys may choose their own (the index sends a save's few hundred key rows
# as one INSERT).
COPY_MIN_ROWS = 50
# Rows up to which an insert is a plain VALUES list: for a few rows, adapting one array per column cost psycopg
# more than the whole insert.
_VALUES_MAX_ROWS = 10


def bulk_insert(
    model: type[models.Model], rows: Iterable[dict[str, Any]], *, ignore_conflicts: bool = False
) -> list[int]:
    """Insert ``rows`` (dicts of attname -> value) and return their new primary keys in the same order.

    With ``ignore_conflicts`` rows violating a unique constraint are skipped and no keys are returned (as
    bulk_create does).
    """
    rows = list(rows)
    if not rows:
        return []
    connection = connections[router.db_for_write(model)]
    plan = _plan(model, connection, None, _db_defaults_given(model, rows))
    values = _prepared(plan, rows)
    return _write(connection, plan, values, keys=not ignore_conflicts, ignore_conflicts=ignore_conflicts,
                  copy_from=COPY_MIN_ROWS)


def insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
    copy_from: int = COPY_MIN_ROWS,
) -> int:
    """Insert plain rows (tuples of these fields' values, by name or attname) without building instances or
    dicts, and return how many were sent; no keys are read back. From ``copy_from`` rows they go by COPY
    where the database has it (a scan writes hundreds of thousands of group members, an import millions of
    match keys: COPY is several times faster than INSERT there)."""
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    given = tuple(model._meta.get_field(name).attname for name in fields)
    plan = _plan(model, connection, given, frozenset(given))
    values = rows if plan.rows_as_given else _prepared_tuples(plan, rows)
    _write(connection, plan, values, keys=False, ignore_conflicts=ignore_conflicts, copy_from=copy_from)
    return len(rows)


def _write(connection, plan: _Plan, values: list, *, keys: bool, ignore_conflicts: bool, copy_from: int) -> list[int]:
    """Send prepared rows by the cheapest statement this database and count allow; return their keys if asked."""
    if copies(connection) and not ignore_conflicts and len(values) >= copy_from and (plan.copyable or not keys):
        return _copy(connection, plan, values, keys=keys)
    if inserts_by_executemany(connection):
        return _executemany(connection, plan.values_sql(1, ""), values, keys=keys, ignore_conflicts=ignore_conflicts)
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else plan.returning if keys else ""
    if arrays(connection) and len(values) > _VALUES_MAX_ROWS:
        # One array per column (as Django's own bulk_create does there): a handful of parameters instead of
        # one per value, which psycopg would otherwise quote into the statement one by one.
        def statement(chunk: list) -> tuple[str, list]:
            return plan.head + plan.unnest_sql + tail, [list(column) for column in zip(*chunk)]

        per_statement = _MAX_ROWS_PER_STATEMENT
    else:
        # A few rows (an intake request's lead, phones, note; a save's keys): plain VALUES, the cheapest to send
        # and plan.
        def statement(chunk: list) -> tuple[str, list]:
            return plan.values_sql(len(chunk), tail), [value for record in chunk for value in record]

        limit = connection.features.max_query_params
        per_statement = min(
            max(1, limit // len(plan.fields)) if limit else _MAX_ROWS_PER_STATEMENT, _MAX_ROWS_PER_STATEMENT
        )
    pks: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_statement):
            cursor.execute(*statement(values[start : start + per_statement]))
            if keys:
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


def _prepared_tuples(plan: _Plan, rows: list[Sequence[Any]]) -> list[list[Any]]:
    """Return tuple rows (the plan's given columns first) prepared, the other columns' defaults appended."""
    given = plan.columns[: len(plan.given)]
    missing = plan.columns[len(plan.given) :]
    now = None
    values = []
    for row in rows:
        record = []
        for value, (_attname, prepare, _default, auto_time) in zip(row, given):
            if value is None and auto_time:
                now = now or prepare(timezone.now())
                record.append(now)
            else:
                record.append(value if prepare is _plain else prepare(value))
        for _attname, prepare, default, auto_time in missing:
            if auto_time:
                now = now or prepare(timezone.now())
                record.append(now)
            else:
                record.append(default())
        values.append(record)
    return values


class _Plan:
    """What inserting into one model's table needs, worked out once per model, database and set of given
    columns: the columns, how each value is prepared, and the fixed parts of the SQL."""

    def __init__(self, model: type[models.Model], connection, given: tuple[str, ...] | None, db_defaults: frozenset):
        opts = model._meta
        quote = connection.ops.quote_name
        self.opts = opts
        self.given = given or ()
        fields = [
            field
            for field in opts.concrete_fields
            if not (field.primary_key and isinstance(field, _PLAIN_KEYS) and field.attname not in self.given)
            and (not _only_db_default(field) or field.attname in db_defaults)
        ]
        if given is not None:  # the given columns first, in the rows' order
            by_attname = {field.attname: field for field in fields}
            fields = [by_attname[attname] for attname in given] + [f for f in fields if f.attname not in given]
        self.fields = fields
        self.columns = []
        for field in self.fields:
            prepare = _preparer(field, connection)
            auto_time = bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))
            self.columns.append((field.attname, prepare, _default_of(field, prepare), auto_time))
        # Tuple rows that are already what the database takes: sent as they come.
        self.rows_as_given = given is not None and len(given) == len(fields) and all(
            prepare is _plain and not auto_time for _attname, prepare, _default, auto_time in self.columns
        )
        self.copyable = isinstance(opts.pk, _PLAIN_KEYS) and opts.pk not in self.fields
        self.quoted_columns = [quote(field.column) for field in self.fields]
        self.table = quote(opts.db_table)
        self.head = f"INSERT INTO {self.table} ({', '.join(self.quoted_columns)}) "
        self.returning = f" RETURNING {quote(opts.pk.column)}"
        self.placeholder = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        if arrays(connection):
            db_types = [field.db_type(connection).split("(")[0] for field in self.fields]
            self.unnest_sql = "SELECT * FROM UNNEST(" + ", ".join(f"(%s)::{db_type}[]" for db_type in db_types) + ")"

    def values_sql(self, rows: int, tail: str) -> str:
        """Return the INSERT of this many rows as a VALUES list, followed by `tail` (RETURNING, ON CONFLICT)."""
        return self.head + "VALUES " + ", ".join([self.placeholder] * rows) + tail


# Derived from the models' _meta per database (kind 2 of the caching rule in docs/ARCHITECTURE.md).
_plans: dict[tuple, _Plan] = {}


def _plan(model: type[models.Model], connection, given: tuple[str, ...] | None, db_defaults: frozenset) -> _Plan:
    key = (model, connection.alias, given, db_defaults)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _Plan(model, connection, given, db_defaults)
    return plan


def _only_db_default(field: models.Field) -> bool:
    return field.has_db_default() and not field.has_default()


# Derived from the models' _meta (kind 2 of the caching rule).
_db_default_names: dict[type[models.Model], tuple[str, ...]] = {}
_NONE: frozenset = frozenset()


def _db_defaults_given(model: type[models.Model], rows: list[dict[str, Any]]) -> frozenset:
    """Return the columns with only a database default that some row gives (the others are left out)."""
    names = _db_default_names.get(model)
    if names is None:
        names = _db_default_names[model] = tuple(
            field.attname for field in model._meta.concrete_fields if _only_db_default(field)
        )
    return frozenset(name for name in names if any(name in row for row in rows)) if names else _NONE


def _copy(connection, plan: _Plan, values: list, *, keys: bool) -> list[int]:
    """Insert with COPY, the keys drawn from the table's sequence first when wanted: psycopg sends COPY rows
    from C, where the arrays of an UNNEST insert were adapted value by value in Python (a third of an import's
    database work)."""
    quote = connection.ops.quote_name
    opts = plan.opts
    with connection.cursor() as cursor:
        if not keys:
            with cursor.cursor.copy(f"COPY {plan.table} ({', '.join(plan.quoted_columns)}) FROM STDIN") as copy:
                for record in values:
                    copy.write_row(record)
            return []
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [opts.db_table, opts.pk.column, len(values)],
        )
        pks = [row[0] for row in cursor.fetchall()]
        columns = ", ".join([quote(opts.pk.column), *plan.quoted_columns])
        with cursor.cursor.copy(f"COPY {plan.table} ({columns}) FROM STDIN") as copy:
            for pk, record in zip(pks, values, strict=True):
                copy.write_row([pk, *record])
    return pks


def _executemany(connection, sql: str, values: list, *, keys: bool, ignore_conflicts: bool) -> list[int]:
    """Insert with executemany: SQLite runs it in C, and Django's debug log records it once, not per value."""
    # In a transaction even when the caller has none: the rows' ids are consecutive only if no other
    # connection can write between them.
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        if ignore_conflicts:
            cursor.executemany(sql + " ON CONFLICT DO NOTHING", values)
            return []
        cursor.executemany(sql, values)
        if not keys:
            return []
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
    """Insert unsaved instances of several models, setting their primary keys: in one statement where the
    database has one-statement writes (one data-modifying WITH per model), so a request's last few rows cost
    one round trip; elsewhere one insert per model. For a few rows each (VALUES lists); bulk_insert_instances
    is for many."""
    groups = [(model, list(instances)) for model, instances in groups if instances]
    connection = connections[router.db_for_write(groups[0][0])] if groups else None
    if connection is None or not one_statement_writes(connection) or len(groups) == 1:
        for model, instances in groups:
            bulk_insert_instances(model, instances)
        return
    parts, selects, params = [], [], []
    for position, (model, instances) in enumerate(groups):
        _fill_auto_times(model, instances)
        rows = [instance_values(instance) for instance in instances]
        plan = _plan(model, connection, None, _db_defaults_given(model, rows))
        values = _prepared(plan, rows)
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
