"""Every entity's match keys rewritten: this release reads some names differently.

A surname whose spelling folds onto a title ("Dyer" -> "dr") was dropped as "Dr." (dedup.engine.normalize), so
"Ashley Dyer" was keyed as "Ashley" alone; the new reading keeps it. Keys written before would not meet the keys
of records saved from now on, so they are rewritten here: at once on a small base, else in the background with
progress (dedup.engine.index.builds, reason "update"), the card, the preview and the queue saying the index is
being rebuilt until it is done. A database with no records (a new one, the tests') has nothing to rewrite.
"""
from django.db import migrations, models


def forwards(apps, schema_editor):
    from dedup.engine.value_settings import keys_rewrite_after_update

    keys_rewrite_after_update()


class Migration(migrations.Migration):
    dependencies = [("dedup", "0021_scoring_name_with_contacts")]

    operations = [
        migrations.AlterField(
            model_name="indexbuild",
            name="reason",
            field=models.CharField(
                choices=[
                    ("rule", "a rule changed"),
                    ("placeholders", "the placeholder values changed"),
                    ("field_type", "a custom field's type changed"),
                    ("rebuild", "a full rebuild"),
                    ("update", "an update reads values differently"),
                ],
                default="rule",
                max_length=16,
                verbose_name="why",
            ),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
