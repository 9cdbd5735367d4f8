"""Create the "Daily duplicate scan" periodic task: every day at 03:00 in the site's time zone.

Hand-written data migration. Admins change the time or switch it off in the admin (Periodic tasks); running
the migration again never adds a second task, and reversing it removes the task (and its schedule when
nothing else uses it).
"""
from django.conf import settings
from django.db import migrations
from django.utils import timezone

TASK_NAME = "Daily duplicate scan"
# The Celery task's registered name (dedup/tasks.py).
TASK = "dedup.scan_scheduled"


def create_daily_scan(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute="0",
        hour="3",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": TASK,
            "crontab": schedule,
            "interval": None,
            "solar": None,
            "clocked": None,
            "args": "[]",
            "kwargs": "{}",
            "enabled": True,
            "one_off": False,
            "description": (
                "Finds duplicate groups in every entity that has active rules and fills the review queue "
                "(Duplicate control \u203a Duplicate groups)."
            ),
        },
    )
    # Historical models send no signals: tell a running beat that its schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_daily_scan(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    schedule_ids = list(PeriodicTask.objects.filter(name=TASK_NAME).values_list("crontab_id", flat=True))
    PeriodicTask.objects.filter(name=TASK_NAME).delete()
    CrontabSchedule.objects.filter(pk__in=[pk for pk in schedule_ids if pk], periodictask__isnull=True).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("dedup", "0004_scan_runs"),
    ]

    operations = [migrations.RunPython(create_daily_scan, remove_daily_scan)]
