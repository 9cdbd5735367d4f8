"""What the import and demo-data benchmarks share: Django on a throwaway database, migrated and empty."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

WITHOUT_INDEX_HELP = "disconnect the duplicate index from records_bulk_saved, to see this code's own cost"


def setup_empty_database(prefix: str, *, without_index: bool) -> Path:
    """Set Django up on a SQLite file in a new temporary folder (or DATABASE_URL, which must be empty), migrate it,
    optionally disconnect the duplicate index, and return the folder."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from crm.models import Customer

    call_command("migrate", verbosity=0)
    if without_index:
        from dedup.signals import records_bulk_saved

        records_bulk_saved.disconnect(dispatch_uid="dedup.engine.index.bulk_saved")
    if Customer.objects.exists():
        sys.exit(f"The database {connection.settings_dict['NAME']} has customers; point DATABASE_URL at an empty one.")
    return workdir
