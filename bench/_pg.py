"""What the PostgreSQL benchmarks share: a database of their own, and COPY to fill it fast."""
from __future__ import annotations

import os

# The server the benchmarks use (user postgres, trust auth), never its test databases.
SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")


def setup_django(db_name: str, **environ: str) -> None:
    """Point Django at this benchmark database on SERVER (local settings, DEBUG off unless the caller's environment
    says otherwise; ``environ``: more variables set unless already set) and set it up."""
    os.environ["DATABASE_URL"] = f"{SERVER}/{db_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    for name, value in environ.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


def percentile(values: list[float], share: float) -> float:
    """Return the value at this share of the sorted values (nearest rank between the first and the last)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def create_database(name: str, *, reuse: bool) -> bool:
    """Create the database `name` (dropping an old one unless reused); return True when it existed and is kept."""
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return True
        if exists:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    return False


def copy_rows(model, rows, *, fields: list[str]) -> int:
    """COPY rows (tuples in the order of `fields`) into the model's table; other columns get their defaults.

    The primary key comes from its sequence unless the rows give it (the sequence is then moved past them).
    """
    from django.db import connection
    from django.utils import timezone
    from psycopg.types.json import Jsonb

    now = timezone.now()
    given = {name: position for position, name in enumerate(fields)}
    concrete = [field for field in model._meta.concrete_fields if not field.primary_key or field.attname in given]
    defaults = {}
    for field in concrete:
        if field.attname in given:
            continue
        value = field.get_default()
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        if isinstance(value, (dict, list)):
            value = Jsonb(value)
        defaults[field.attname] = value
    columns = [connection.ops.quote_name(field.column) for field in concrete]
    table = model._meta.db_table
    count = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[given[f.attname]] if f.attname in given else defaults[f.attname] for f in concrete])
                count += 1
        if "id" in given:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM \"{table}\"))")
    return count
