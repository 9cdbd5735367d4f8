"""The learned prior is the probability that two random records match, and the review threshold starts at 0.5.

The prior was the candidates' share of matches scaled to all pairs, 4 to 15 times the true share on the CRM set;
learned over all pairs (dedup.engine.scoring.model.prior_over_all_pairs) the probabilities are calibrated and a
pair above 0.5 is more likely a duplicate than not (bench/README.md, 2026-12-06 precision round). Every stored
model is due for learning again (its learning time cleared: the next scan learns it, scan_scored.needs_learning),
and one still at the former default threshold, 0.9, moves to 0.5; a threshold an administrator chose otherwise is
kept. Until the next scan the card and the intake weigh pairs against the former, higher prior.
"""
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import migrations, models

OLD_DEFAULT, NEW_DEFAULT = 0.9, 0.5


def forwards(apps, schema_editor):
    models_ = apps.get_model("dedup", "ScoringModel").objects
    models_.filter(threshold=OLD_DEFAULT).update(threshold=NEW_DEFAULT)
    models_.update(learned_at=None)


def backwards(apps, schema_editor):  # the learning times stay cleared: the next scan learns again
    apps.get_model("dedup", "ScoringModel").objects.filter(threshold=NEW_DEFAULT).update(threshold=OLD_DEFAULT)


class Migration(migrations.Migration):
    dependencies = [("dedup", "0019_figures_refresh_queued")]

    operations = [
        migrations.AlterField(
            model_name="scoringmodel",
            name="prior",
            field=models.FloatField(verbose_name="probability that two random records match"),
        ),
        migrations.AlterField(
            model_name="scoringmodel",
            name="threshold",
            field=models.FloatField(
                default=0.5,
                help_text="Pairs with at least this match probability are duplicates.",
                validators=[MinValueValidator(0.5), MaxValueValidator(0.9999)],
                verbose_name="review threshold",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
