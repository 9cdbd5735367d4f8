"""Records waiting for their stored duplicate figures: a change writes a row when it commits, the refresh task
(dedup.engine.counts) takes them together. Schema only."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dedup', '0017_matchkey_analyze_often'),
    ]

    operations = [
        migrations.CreateModel(
            name='FiguresPending',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('entity', models.CharField(max_length=32, verbose_name='records')),
                ('record_id', models.BigIntegerField(verbose_name='record')),
                ('changed_at', models.DateTimeField(verbose_name='when')),
            ],
            options={
                'verbose_name': 'record waiting for its figures',
                'verbose_name_plural': 'records waiting for their figures',
                'indexes': [models.Index(fields=['entity', 'changed_at'], name='dedup_figurespending_order')],
                'constraints': [models.UniqueConstraint(fields=('entity', 'record_id'), name='dedup_figurespending_unique')],
            },
        ),
    ]
