"""The CRM's admin: entities, reference data and the timeline, one module each, plus the intake's admin."""
from ..intake import admin as intake_admin  # noqa: F401  (owned with the intake; registered with the rest here)
from . import catalog, entities, imports, timeline  # noqa: F401  (importing registers the admins)
