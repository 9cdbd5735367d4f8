"""Seed the demo base once and print the admin login: what `make run` calls before starting the server."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from crm.management.commands.seed_demo import demo_report_lines
from crm.services.demo import DEFAULT_SEED, demo_admin_login_ensure, demo_seed_once


class Command(BaseCommand):
    @property
    def help(self):  # a property, so the text is translated when asked for, not when the module is imported
        return _(
            "Seed the demo base if there are no customers yet, create the admin user once with a random password "
            "kept in var/admin_login.txt, and print the login."
        )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=2000, help=_("Customer records of the demo base."))
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=_("The demo base's random seed."))
        parser.add_argument(
            "--login-file",
            default=str(Path(settings.VAR_DIR) / "admin_login.txt"),
            help=_("Where the admin password is kept (default %(default)s)."),
        )
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/admin/", help=_("The admin's address, printed with the login.")
        )

    def handle(self, *args, customers, seed, login_file, url, verbosity=1, **options):
        if customers < 1:
            raise CommandError(_("--customers must be at least 1."))
        report = demo_seed_once(customers=customers, seed=seed)
        if verbosity:
            if report is None:
                self.stdout.write(_("The database has customers already; no demo data added."))
            else:
                self.stdout.write(demo_report_lines(report))
        login = demo_admin_login_ensure(login_file=Path(login_file), url=url)
        # Always printed, even with -v0: it is what the person who ran `make run` is waiting for.
        rule = "-" * 60
        self.stdout.write(rule)
        self.stdout.write(_("Mergewise admin: %(url)s") % {"url": login.url})
        self.stdout.write(_("  username: %(username)s") % {"username": login.username})
        self.stdout.write(_("  password: %(password)s") % {"password": login.password or _("(unknown)")})
        if login.password:
            self.stdout.write(_("  (kept in %(file)s)") % {"file": login_file})
        if login.warning:
            self.stdout.write(self.style.WARNING(login.warning))
        self.stdout.write(rule)
