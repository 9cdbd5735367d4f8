"""CSV and XLSX import and export of customers, companies, leads and orders: one set of rules, two doors.

* ``cells``: what a cell means (yes/no, numbers in both decimal styles, dates, phones, emails, messenger
  handles, list separators) and the formula escape of exported text. Both doors call it.
* ``files``: a file as untrusted input: size, unpacked size, dimension and row limits before parsing; the
  CSV separator (``,`` ``;`` or tab) detected.
* ``engine``: ``records_import_csv``, the ``import_csv`` command's bulk importer.
* ``resources``: the django-import-export resources behind the admin's Import and Export buttons.

Why two writers rather than the command built on the resources: FIGURES_PENDING
"""
from .engine import IMPORT_BATCH_SIZE, IMPORTERS, ImportReport, RowError, records_import_csv
from .files import ImportFileError

__all__ = ["IMPORT_BATCH_SIZE", "IMPORTERS", "ImportFileError", "ImportReport", "RowError", "records_import_csv"]
