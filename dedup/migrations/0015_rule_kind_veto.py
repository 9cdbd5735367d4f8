from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dedup", "0014_value_settings_index_builds")]

    operations = [
        migrations.AddField(
            model_name="rule",
            name="kind",
            field=models.CharField(
                choices=[
                    ("duplicate", "always a duplicate when all conditions hold"),
                    ("veto", "never a duplicate when a field differs (veto)"),
                ],
                default="duplicate",
                help_text=(
                    "A veto's conditions are the fields that must not differ: records whose values of one of them "
                    "are both filled in and different are never duplicates."
                ),
                max_length=16,
                verbose_name="kind",
            ),
        ),
    ]
