"""The Celery application; tasks are discovered in every installed app's tasks.py."""
import os
from pathlib import Path

from celery import Celery

# Production unless told otherwise, like config/wsgi.py: this module is imported with the config package, so
# its default is also the web server's. `make run` (Procfile) and manage.py choose the local settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("mergewise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_filesystem_folders(sender, **kwargs):
    """Create the filesystem broker's folders; the transport expects them to exist."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
    backend = str(sender.conf.result_backend or "")
    if backend.startswith("file://"):
        Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


# One JSON line per task in production (the handlers log at INFO, which only production's LOGGING shows).
from config import logs, worker_priority  # noqa: E402,F401  (logs connects the task signal handlers)

# The workers and their SQL below the web's priority where WORKER_CPU_PRIORITY asks for it (Procfile.prod).
worker_priority.connect()
