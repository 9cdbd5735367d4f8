"""The refresh tasks of the stored figures sent and not yet taken, one per entity and queue: changes made while one
waits send no other (dedup.engine.counts). Schema only."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dedup', '0018_figures_pending'),
    ]

    operations = [
        migrations.CreateModel(
            name='FiguresRefreshQueued',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('entity', models.CharField(max_length=32, verbose_name='records')),
                ('queue', models.CharField(max_length=32, verbose_name='queue')),
                ('sent_at', models.DateTimeField(verbose_name='sent')),
            ],
            options={
                'verbose_name': 'queued refresh of figures',
                'verbose_name_plural': 'queued refreshes of figures',
                'constraints': [models.UniqueConstraint(fields=('entity', 'queue'), name='dedup_figuresrefreshqueued_unique')],
            },
        ),
    ]
