"""What the scan and the review queue refuse, in words for the user."""
from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _


class ScanError(Exception):
    """A scan could not start or a queue action could not be done; the message says why, for the user."""


class ScanAlreadyRunning(ScanError):
    def __init__(self, run):
        self.run = run
        if run is not None:
            message = _("A scan is already running (#%(id)s, started %(started)s); it was not started twice.") % {
                "id": run.pk,
                "started": timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M"),
            }
        else:
            message = _("A scan is already running; it was not started twice.")
        super().__init__(message)
