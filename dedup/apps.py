"""Duplicate control: normalisation, rules, match keys, finder, scan, merge and notifications."""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DedupConfig(AppConfig):
    name = "dedup"
    verbose_name = _("Duplicate control")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The Celery tasks, registered in web and worker processes alike (services send them by name).
        from . import tasks  # noqa: F401

        # The match-key index follows every save and delete of the registered entities and their contact rows.
        from .engine import index

        index.connect()

        # The stored duplicate figures (list counts, the "Has duplicates" filter) follow the index.
        from .engine import counts

        counts.connect()

        # The review queue follows merges and undos.
        from . import review

        review.connect()
