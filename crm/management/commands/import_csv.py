"""Import customers, companies, leads or orders from a CSV file: `manage.py import_csv customer people.csv`."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from tqdm import tqdm

from crm.importing import IMPORTERS, ImportFileError, records_import_csv


class Command(BaseCommand):
    @property
    def help(self):  # a property, so the text is translated when asked for, not when the module is imported
        return _(
            "Import records from a CSV file (UTF-8, ',', ';' or tab separated, the first line names the columns). "
            "Rows with a known external_id update that record; bad rows are reported by line and skipped."
        )

    def add_arguments(self, parser):
        parser.add_argument("entity", help=_("What the file holds: %(choices)s.") % {"choices": ", ".join(IMPORTERS)})
        parser.add_argument("path", help=_("The CSV file."))
        parser.add_argument(
            "--owner", help=_("Username of the responsible manager for new records whose row names none.")
        )
        parser.add_argument("--no-progress", action="store_true", help=_("Do not show the progress bar."))
        parser.add_argument(
            "--atomic",
            action="store_true",
            help=_("All or nothing: import no row at all if any row is bad (one transaction for the whole file)."),
        )

    def handle(self, *args, entity, path, owner=None, no_progress=False, atomic=False, verbosity=1, **options):
        owner_user = None
        if owner:
            user_model = get_user_model()
            try:
                owner_user = user_model._default_manager.get_by_natural_key(owner)
            except user_model.DoesNotExist:
                raise CommandError(_("There is no user %(username)r.") % {"username": owner}) from None

        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                # The raw stream: Django's OutputWrapper would end each of tqdm's redraws with a newline.
                bar = tqdm(total=total, unit=_("rows"), file=self.stderr._out, dynamic_ncols=True)
            bar.update(done - bar.n)

        try:
            report = records_import_csv(
                entity=entity,
                path=path,
                owner=owner_user,
                progress=None if no_progress or verbosity == 0 else progress,
                atomic=atomic,
            )
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()

        if verbosity == 0:
            # Quiet, but a row that was not imported is never silently lost.
            for error in report.skipped:
                self.stderr.write(str(error))
            if report.rolled_back:
                raise CommandError(_("Nothing was imported (--atomic): some rows are bad."))
            return
        rows = ngettext("%(count)s row", "%(count)s rows", report.rows) % {"count": report.rows}
        self.stdout.write(
            _("Imported %(entity)s records from %(path)s in %(seconds).1f s (%(rows)s):")
            % {"entity": entity, "path": path, "seconds": report.seconds, "rows": rows}
        )
        self.stdout.write(_("  created: %(count)s") % {"count": report.created})
        self.stdout.write(_("  updated: %(count)s") % {"count": report.updated})
        if report.companies_created:
            self.stdout.write(_("  companies created: %(count)s") % {"count": report.companies_created})
        summary = _("  skipped: %(count)s") % {"count": len(report.skipped)}
        self.stdout.write(self.style.WARNING(summary) if report.skipped else summary)
        for error in report.skipped:
            self.stdout.write(f"    {error}")
        if report.rolled_back:
            raise CommandError(
                ngettext(
                    "Nothing was imported (--atomic): %(count)s row is bad.",
                    "Nothing was imported (--atomic): %(count)s rows are bad.",
                    len(report.skipped),
                )
                % {"count": len(report.skipped)}
            )
