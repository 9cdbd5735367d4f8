"""Keep the learned model's value frequencies (term frequencies and shared contact values) with it.

Schema only: ScoringModel.frequencies, a JSON map per field; models learned before it have none (empty) and are
read as before, without term-frequency adjustment, until the next learn.
"""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dedup", "0015_rule_kind_veto")]

    operations = [
        migrations.AddField(
            model_name="scoringmodel",
            name="frequencies",
            field=models.JSONField(blank=True, default=dict, editable=False, verbose_name="value frequencies"),
        ),
    ]
