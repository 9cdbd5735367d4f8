"""Create a realistic demo base with known duplicates: `manage.py seed_demo --customers 2000 --seed 7`."""
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from crm.services.demo import DEFAULT_SEED, demo_seed


class Command(BaseCommand):
    @property
    def help(self):  # a property, so the text is translated when asked for, not when the module is imported
        return _(
            "Create demo companies, customers (with planted duplicates), leads, deals, orders and timeline. "
            "custom_fields[\"demo_person\"] records which records belong to the same real person."
        )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=2000, help=_("Customer records to create."))
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help=_("The same seed gives the same base (default %(default)s).")
        )

    def handle(self, *args, customers, seed, verbosity=1, **options):
        if customers < 1:
            raise CommandError(_("--customers must be at least 1."))
        report = demo_seed(customers=customers, seed=seed)
        if verbosity:
            self.stdout.write(demo_report_lines(report))


def demo_report_lines(report) -> str:
    """Return the report of a demo seed as the lines the commands print."""
    planted = sum(count for kind, count in report.duplicates.items() if kind != "telegram_lead")
    lines = [
        _("Demo base (seed %(seed)s) created in %(seconds).1f s:") % {"seed": report.seed, "seconds": report.seconds},
        _("  customers: %(count)s, of them %(planted)s planted duplicates")
        % {"count": report.customers, "planted": planted},
        _("  companies: %(count)s") % {"count": report.companies},
        _("  leads: %(count)s, of them %(planted)s Telegram leads without a phone")
        % {"count": report.leads, "planted": report.duplicates.get("telegram_lead", 0)},
        _("  deals: %(count)s") % {"count": report.deals},
        _("  orders: %(count)s with %(items)s items") % {"count": report.orders, "items": report.order_items},
        _("  timeline rows: %(count)s") % {"count": report.timeline},
        _("  planted duplicates by kind: %(kinds)s")
        % {"kinds": ", ".join(f"{kind} {count}" for kind, count in sorted(report.duplicates.items()))},
        _("  repeat inquiries: %(count)s") % {"count": report.repeat_inquiries},
    ]
    if report.scan_groups:
        lines.append(
            _("  first scan: %(groups)s duplicate groups in the review queue (%(entities)s)")
            % {
                "groups": sum(report.scan_groups.values()),
                "entities": ", ".join(f"{entity} {count}" for entity, count in sorted(report.scan_groups.items())),
            }
        )
    return "\n".join(lines)
