"""Import customers, companies, leads or orders from a CSV file: `manage.py import_csv customer people.csv`."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from tqdm import tqdm

from django.core.exceptions import PermissionDenied, ValidationError

from crm.importing import IMPORTERS, ImportFileError, records_import_csv
from crm.importing.duplicates import DEFAULT_POLICY
from crm.importing.report import line_text
from crm.importing.undo import import_undo, undo_summary
from crm.models import DuplicatePolicy, ImportBatch


class Command(BaseCommand):
    @property
    def help(self):  # a property, so the text is translated when asked for, not when the module is imported
        return _(
            "Import records from a CSV file (UTF-8, ',', ';' or tab separated, the first line names the columns). "
            "Rows with a known external_id update that record; bad rows are reported by line and skipped. A row that "
            "duplicates a record (duplicate control's rules) is skipped, updates the record or is created and "
            "flagged (--duplicates). Every import can be undone: import_csv --undo <import id>."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "entity", nargs="?", help=_("What the file holds: %(choices)s.") % {"choices": ", ".join(IMPORTERS)}
        )
        parser.add_argument("path", nargs="?", help=_("The CSV file."))
        parser.add_argument(
            "--duplicates",
            choices=DuplicatePolicy.values,
            default=DEFAULT_POLICY,
            help=_(
                "What a row that duplicates a record does: skip (not imported), update (the record's empty fields "
                "are filled, phones, emails and tags added), create (created and flagged for review; the default)."
            ),
        )
        parser.add_argument(
            "--undo", type=int, metavar="IMPORT_ID",
            help=_("Undo an import: delete the records it created and restore the ones it updated."),
        )
        parser.add_argument(
            "--owner", help=_("Username of the responsible manager for new records whose row names none.")
        )
        parser.add_argument("--no-progress", action="store_true", help=_("Do not show the progress bar."))
        parser.add_argument(
            "--atomic",
            action="store_true",
            help=_("All or nothing: import no row at all if any row is bad (one transaction for the whole file)."),
        )

    def handle(self, *args, entity=None, path=None, owner=None, no_progress=False, atomic=False, verbosity=1,
               duplicates=DEFAULT_POLICY, undo=None, **options):
        if undo is not None:
            return self._undo(undo)
        if not entity or not path:
            raise CommandError(_("Name the entity and the file, or an import to undo with --undo."))
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
                policy=duplicates,
                user=owner_user,
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
        if report.flagged:
            self.stdout.write(self.style.WARNING(
                _("    of them flagged as possible duplicates: %(count)s") % {"count": report.flagged}
            ))
        self.stdout.write(_("  updated: %(count)s") % {"count": report.updated})
        if report.duplicates_skipped:
            self.stdout.write(_("  not imported as duplicates: %(count)s") % {"count": report.duplicates_skipped})
        if report.companies_created:
            self.stdout.write(_("  companies created: %(count)s") % {"count": report.companies_created})
        summary = _("  skipped: %(count)s") % {"count": len(report.skipped)}
        self.stdout.write(self.style.WARNING(summary) if report.skipped else summary)
        for error in report.skipped:
            self.stdout.write(f"    {error}")
        model = IMPORTERS[entity].model
        if report.lines:
            self.stdout.write(_("  rows that met a record (duplicate control's rules, or the external ID):"))
            for line in report.lines:
                self.stdout.write(f"    {line_text(model, line)}")
        if report.batch_id is not None:
            self.stdout.write(
                _("Import #%(id)s; undo it with: manage.py import_csv --undo %(id)s") % {"id": report.batch_id}
            )
        if report.rolled_back:
            raise CommandError(
                ngettext(
                    "Nothing was imported (--atomic): %(count)s row is bad.",
                    "Nothing was imported (--atomic): %(count)s rows are bad.",
                    len(report.skipped),
                )
                % {"count": len(report.skipped)}
            )

    def _undo(self, batch_id: int) -> None:
        batch = ImportBatch.objects.filter(pk=batch_id).first()
        if batch is None:
            raise CommandError(_("There is no import #%(id)s.") % {"id": batch_id})
        try:
            batch = import_undo(batch=batch, user=_CommandUser())
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", None) or [str(exc)])) from exc
        self.stdout.write(self.style.SUCCESS(undo_summary(batch)))


class _CommandUser:
    """Whoever runs manage.py may do anything (as with every other command): the undo's actor then."""

    pk = None
    is_active = True

    def has_perm(self, perm: str) -> bool:
        return True
