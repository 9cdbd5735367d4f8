"""Have autovacuum re-analyze the match-key table after a few thousand changed rows, not after 10% of it.

PostgreSQL only (SQLite has no autovacuum). Why: the table holds every entity's keys, and an entity that starts
small (leads arriving next to a million customers) stays "absent" in the planner's statistics until autovacuum's
default threshold, 10% of the table (300,000 rows at 1,000,000 customers), is crossed. With `entity = 'lead'`
estimated at one row, PostgreSQL ran the finder's candidate query as a nested loop over every lead key: 1.7 s per
intake request after 1,300 leads instead of 30-60 ms (bench/README.md, 2026-12-05). A fixed threshold of 1,000
rows plus 0.1% of the table re-analyzes it after about 4,000 changed rows at 1,000,000 customers (about 1,300 new
leads); one ANALYZE samples 30,000 rows whatever the table's size (about 1 s at 3,000,000 rows).
"""
from django.db import migrations

TABLE = "dedup_matchkey"
SETTINGS = {"autovacuum_analyze_scale_factor": "0.001", "autovacuum_analyze_threshold": "1000"}


def analyze_often(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    options = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} SET ({options})")


def analyze_as_default(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} RESET ({', '.join(SETTINGS)})")


class Migration(migrations.Migration):
    dependencies = [("dedup", "0016_scoring_term_frequencies")]

    operations = [migrations.RunPython(analyze_often, analyze_as_default, elidable=False)]
