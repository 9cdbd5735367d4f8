"""Duplicate control: normalisation, rules, match keys, finder, scan, merge and notifications."""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DedupConfig(AppConfig):
    name = "dedup"
    verbose_name = _("Duplicate control")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The admin of merge jobs and notifications registers itself on import.
        from . import admin_merge  # noqa: F401

        # The match-key index follows every save and delete of the registered entities and their contact rows.
        from . import index

        index.connect()

        # The automatic scan: its admin (scan runs, the review queue), its Celery tasks (not in tasks.py, so
        # imported here for the worker and beat), and the queue following merges and undos.
        from . import admin_queue, scan_runs, tasks_scan  # noqa: F401

        scan_runs.connect()
