"""Test settings: the same stack as local, fast hashing, eager Celery unless a test starts a real worker."""
import tempfile

from .base import *  # noqa: F401,F403
from .base import CELERY_BROKER_URL, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # A fresh folder per run, so messages left by `make run` never reach a test worker.
    _broker_dir = tempfile.mkdtemp(prefix="mergewise-celery-")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{_broker_dir}/queue",
        "data_folder_out": f"{_broker_dir}/queue",
        "processed_folder": f"{_broker_dir}/processed",
        "control_folder": f"{_broker_dir}/control",
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{_broker_dir}/results"
MEDIA_ROOT = tempfile.mkdtemp(prefix="mergewise-media-")
LANGUAGE_CODE = "en"
# WhiteNoise looks for the collected files at start-up; tests serve from the apps (no collectstatic).
STATIC_ROOT = tempfile.mkdtemp(prefix="mergewise-static-")
