"""Prepare the single-machine production stack (`make prod`): its environment file and its database.

`python -m config.prod_env` writes `var/prod.env` (read by honcho and by `honcho run`): production settings, a
secret key generated once and kept there (var/ is never committed), PostgreSQL and Redis on this machine, the
process counts; then creates the PostgreSQL database if it is missing. Values already in the environment win,
so `make prod PROD_DATABASE_URL=... WEB_CONCURRENCY=4` changes them.
"""
from __future__ import annotations

import os
import secrets
import sys
from urllib.parse import urlsplit

from config.env import VAR_DIR

ENV_FILE = VAR_DIR / "prod.env"
SECRET_FILE = VAR_DIR / "prod_secret_key"

DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/mergewise",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/1",
    "WEB_HOST": "127.0.0.1",
    "WEB_PORT": "8000",
    "WEB_CONCURRENCY": "3",  # gunicorn processes (config/gunicorn.conf.py says why)
    "WEB_THREADS": "4",  # threads per gunicorn process, and database connections per process
    # The intake API's own gunicorn (Procfile.prod's api; config/gunicorn.conf.py says why): its port, processes
    # and threads per process (and database connections per process)
    "API_PORT": "8001",
    "API_CONCURRENCY": "2",
    "API_THREADS": "2",
    "WORKER_CONCURRENCY": "2",  # Celery worker processes of the bulk queue (scans, index rebuilds)
    # Celery worker processes of the interactive queue (merges, undos, decisions): a worker of its own,
    # so a scan never holds them up (config/settings/base.py, CELERY_TASK_ROUTES)
    "INTERACTIVE_CONCURRENCY": "2",
    # Celery worker processes of the figures queue (the stored duplicate figures after a commit): a worker of its
    # own, so a refresh waiting for a lock never holds a merge up (config/settings/base.py, CELERY_TASK_ROUTES)
    "FIGURES_CONCURRENCY": "1",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    # Plain HTTP on one machine: no HTTPS redirect, no HSTS, cookies without the Secure flag. Behind a TLS proxy
    # leave this out (README, "Production").
    "DJANGO_SECURE_SSL": "false",
    "LOG_LEVEL": "INFO",
}


def secret_key() -> str:
    """Return the stack's secret key, generating it on the first start."""
    if SECRET_FILE.is_file():
        return SECRET_FILE.read_text().strip()
    key = secrets.token_urlsafe(50)
    SECRET_FILE.touch(mode=0o600)
    SECRET_FILE.write_text(key + "\n")
    return key


def environment() -> dict[str, str]:
    values = {
        name: os.environ.get(f"PROD_{name}") or os.environ.get(name) or default for name, default in DEFAULTS.items()
    }
    values["DATABASE_URL"] = os.environ.get("PROD_DATABASE_URL") or DEFAULTS["DATABASE_URL"]
    values["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    values["DJANGO_SECRET_KEY"] = secret_key()
    values["STATIC_ROOT"] = str(VAR_DIR / "static")
    host = values["WEB_HOST"]
    values["DJANGO_CSRF_TRUSTED_ORIGINS"] = f"http://{host}:{values['WEB_PORT']}"
    if host not in values["DJANGO_ALLOWED_HOSTS"].split(","):
        values["DJANGO_ALLOWED_HOSTS"] += f",{host}"
    return values


def database_create(url: str) -> bool:
    """Create the PostgreSQL database named in `url` when it is missing; return True when it was created."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = parts._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        admin.execute(f'CREATE DATABASE "{name}"')
    return True


def main() -> None:
    values = environment()
    if not values["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        sys.exit("The production stack runs on PostgreSQL: PROD_DATABASE_URL=postgres://...")
    ENV_FILE.touch(mode=0o600)
    ENV_FILE.write_text("".join(f"{name}={value}\n" for name, value in sorted(values.items())))
    if database_create(values["DATABASE_URL"]):
        print(f"created the database {urlsplit(values['DATABASE_URL']).path.lstrip('/')}")
    print(f"environment written to {ENV_FILE} (the secret key is kept in {SECRET_FILE})")


if __name__ == "__main__":
    main()
