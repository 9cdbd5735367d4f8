"""The CRM app: customers, companies, leads, deals, orders and their timeline."""
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("CRM")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Register the CRM's entities with duplicate control (dedup never imports crm models by name).
        from . import dedup_registration  # noqa: F401

        # Leads and deals made anywhere (admin, import, intake) get their repeat-sales flags.
        from .services import repeat_sales

        repeat_sales.connect_signals()
        # Every process keeps the intake's configuration in memory; a change to it renews the stamp it checks.
        from .intake import config as intake_config

        intake_config.connect_signals()
