"""Create the "Sweep stalled jobs" periodic task: every minute, end the jobs whose worker died.

Hand-written data migration, like 0005. Merges and undos whose worker was killed fail with a notification,
scan chunks are sent again (dedup.tasks.jobs_sweep). Running it again never adds a second task; reversing it
removes the task and its schedule when nothing else uses it.
"""
from django.db import migrations
from django.utils import timezone

TASK_NAME = "Sweep stalled jobs"
# The Celery task's registered name (dedup/tasks.py SWEEP_TASK).
TASK = "dedup.jobs_sweep"


def create_sweeper(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    schedule, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": TASK,
            "interval": schedule,
            "crontab": None,
            "solar": None,
            "clocked": None,
            "args": "[]",
            "kwargs": "{}",
            "enabled": True,
            "one_off": False,
            "description": (
                "Ends merges and undos whose worker died (the requester is notified) and sends again the scan "
                "chunks whose worker died."
            ),
        },
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_sweeper(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    schedule_ids = list(PeriodicTask.objects.filter(name=TASK_NAME).values_list("interval_id", flat=True))
    PeriodicTask.objects.filter(name=TASK_NAME).delete()
    IntervalSchedule.objects.filter(pk__in=[pk for pk in schedule_ids if pk], periodictask__isnull=True).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("dedup", "0009_merge_job_undo_in_background"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_sweeper, remove_sweeper)]
