"""Test settings: the same stack as local, fast hashing, eager Celery unless a test starts a real worker."""
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403
from .base import CELERY_BROKER_URL, DATABASES, env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # A fresh folder per run, so messages left by `make run` never reach a test worker. A worker the fault tests
    # start in another process is handed the same folder (CELERY_TEST_BROKER_DIR).
    _broker_dir = env("CELERY_TEST_BROKER_DIR", default="") or tempfile.mkdtemp(prefix="mergewise-celery-")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{_broker_dir}/queue",
        "data_folder_out": f"{_broker_dir}/queue",
        "processed_folder": f"{_broker_dir}/processed",
        "control_folder": f"{_broker_dir}/control",
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{_broker_dir}/results"
MEDIA_ROOT = tempfile.mkdtemp(prefix="mergewise-media-")

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The test database in a file, not in memory: the fault tests kill a worker running in another process,
    # which must see the same database (tests/dedup/test_faults_worker.py).
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.mkdtemp(prefix="mergewise-db-")) / "test.sqlite3")}

# Fault tests only: seconds a merge (or undo) sleeps inside its transaction, so a worker can be killed mid-merge.
DEDUP_FAULT_TEST_MERGE_DELAY = env.float("DEDUP_FAULT_TEST_MERGE_DELAY", default=0)
LANGUAGE_CODE = "en"
# WhiteNoise looks for the collected files at start-up; tests serve from the apps (no collectstatic).
STATIC_ROOT = tempfile.mkdtemp(prefix="mergewise-static-")
