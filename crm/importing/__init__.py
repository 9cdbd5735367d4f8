"""CSV and XLSX import and export of customers, companies, leads and orders: one set of rules, two doors.

* ``cells``: what a cell means (yes/no, numbers in both decimal styles, dates, phones, emails, messenger
  handles, list separators) and the formula escape of exported text. Both doors call it.
* ``files``: a file as untrusted input: size, unpacked size, dimension and row limits before parsing; the
  CSV separator (``,`` ``;`` or tab) detected.
* ``engine``: ``records_import_csv``, the ``import_csv`` command's bulk importer.
* ``resources``: the django-import-export resources behind the admin's Import and Export buttons.

Two writers share the cell rules, but the command keeps its own bulk writer rather than being built on the
resources, because the resources cannot go at its speed. Measured 2026-12-04 (bench/bench_import.py, SQLite,
a 2-core machine shared with other work, so CPU seconds are the figure to compare): 50,000 customers through
the engine took 12.4 s of CPU (53.3 s in all) and 720 queries, with their 55,000 phones, 50,000 emails, 10,000
handles, 39,895 tag links and duplicate keys; through CustomerResource with ``use_bulk``, ``skip_diff``, no
model validation and batches of 2,000, 184.5 s of CPU (750 s in all) and 100,183 queries, while writing only the
customers and companies (with ``use_bulk`` django-import-export saves no many-to-many and calls
after_save_instance before records have ids, so no contacts, tags or duplicate keys). At 20,000 rows: 4.5 s vs
37.6 s of CPU. The resource works a row at a time (get_instance, the company, the tags, one query each) where
the engine resolves a batch in a constant number of queries; giving the resources that would mean writing the
engine again inside them. The admin keeps the resources for what they are good at: the preview, the
all-or-nothing confirm, and the export.
"""
from .engine import IMPORT_BATCH_SIZE, IMPORTERS, ImportReport, RowError, records_import_csv
from .files import ImportFileError

__all__ = ["IMPORT_BATCH_SIZE", "IMPORTERS", "ImportFileError", "ImportReport", "RowError", "records_import_csv"]
