"""The match-key table's statistics are kept fresh by autovacuum (migration 0017, PostgreSQL only)."""
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="autovacuum settings are PostgreSQL's"),
]


def test_matchkey_table_is_analyzed_after_a_few_thousand_changed_rows():
    # Given the migrated database
    # When PostgreSQL's settings of the match-key table are read
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'dedup_matchkey'")
        (options,) = cursor.fetchone()

    # Then autovacuum re-analyzes it after 1,000 rows plus 0.1% changed, not after 10% of the table
    assert "autovacuum_analyze_scale_factor=0.001" in options
    assert "autovacuum_analyze_threshold=1000" in options
