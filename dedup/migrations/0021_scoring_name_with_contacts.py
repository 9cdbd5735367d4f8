"""A person name's weights counted with whether both records hold a phone or an email.

The learned m and u of a person name's levels get their share among the pairs whose two records both give a
contact (dedup.engine.scoring.model.FieldWeights.m_contact): a name typo or nickname comes on quick entries, not
on records given in full. Every stored model is due for learning again (its learning time cleared: the next scan
learns it, scan_scored.needs_learning); until then its names weigh alone, as before.
"""
from django.db import migrations, models


def forwards(apps, schema_editor):
    apps.get_model("dedup", "ScoringModel").objects.update(learned_at=None)


class Migration(migrations.Migration):
    dependencies = [("dedup", "0020_scoring_prior_over_all_pairs")]

    operations = [
        migrations.AddField(
            model_name="scoringweight",
            name="m_contact",
            field=models.FloatField(blank=True, null=True, verbose_name="m, both records giving a contact"),
        ),
        migrations.AddField(
            model_name="scoringweight",
            name="u_contact",
            field=models.FloatField(blank=True, null=True, verbose_name="u, both records giving a contact"),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
