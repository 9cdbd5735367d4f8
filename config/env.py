"""Read settings from the environment (and an optional .env file) with django-environ."""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
# Local state (SQLite database, filesystem broker, admin login) lives here; a fresh clone has no var/ yet.
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")
