"""Duplicate control: normalisation, rules, match keys, finder, scan, merge and notifications."""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DedupConfig(AppConfig):
    name = "dedup"
    verbose_name = _("Duplicate control")
    default_auto_field = "django.db.models.BigAutoField"
