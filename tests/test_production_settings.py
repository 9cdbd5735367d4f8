"""The production entry points and settings: wsgi/asgi default to them, the public key is refused, check --deploy
passes with the documented environment, and the health endpoints say what is wrong."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError
from django.db.migrations.migration import Migration

from config import health

ROOT = Path(__file__).resolve().parent.parent


def production_env(tmp_path, **overrides) -> dict:
    """The documented production environment (README, "Production"), on a throwaway SQLite file."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
            "DJANGO_ALLOWED_HOSTS": "crm.example.com",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://crm.example.com",
            "STATIC_ROOT": str(tmp_path / "static"),
        }
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_entry_point_defaults_to_production_settings(tmp_path, module):
    # Given no DJANGO_SETTINGS_MODULE, when a server imports the entry point, then it runs production settings.
    env = production_env(tmp_path)
    result = run_python(
        f"import {module}; from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)", env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["config.settings.production", "False"]


def test_entry_point_without_secret_key_refuses_to_start(tmp_path):
    env = production_env(tmp_path, DJANGO_SECRET_KEY=None)
    result = run_python("import config.wsgi", env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_refuse_the_public_local_key(tmp_path):
    from config.settings.base import LOCAL_SECRET_KEY

    env = production_env(tmp_path, DJANGO_SECRET_KEY=LOCAL_SECRET_KEY)
    result = run_python("import config.wsgi", env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is the public local key" in result.stderr


def test_manage_py_still_chooses_local_settings(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'local.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "manage.py", "diffsettings", "--output", "unified"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "+ DEBUG = True" in result.stdout


def test_check_deploy_is_clean_with_the_documented_environment(tmp_path):
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings.production")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_pool_postgresql_connections(tmp_path):
    env = production_env(
        tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/anything", DATABASE_POOL_MAX_SIZE="3",
        DJANGO_SETTINGS_MODULE="config.settings.production",
    )
    result = run_python(
        "import json; from django.conf import settings; import django; django.setup(); "
        "from django.db import connection; db = settings.DATABASES['default']; "
        "check = connection.pool._check; "
        "print(json.dumps([db['CONN_MAX_AGE'], db['OPTIONS']['pool'], check.__module__ + '.' + check.__name__]))", env
    )
    assert result.returncode == 0, result.stderr
    conn_max_age, pool, check = json.loads(result.stdout)
    assert conn_max_age == 0
    assert pool["max_size"] == 3 and pool["min_size"] == 1
    # checked by its socket before it is lent, not by Django's empty query (a round trip per request)
    assert check == "config.db_pool.check_idle_socket"


def test_local_settings_use_short_lived_connections():
    from django.conf import settings

    # The threaded dev server opens one connection per request in flight; keeping them piled idle ones up.
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] == int(os.environ.get("DATABASE_CONN_MAX_AGE", "0"))


# --- /healthz and /readyz -----------------------------------------------------------------------------------------


@pytest.fixture
def fresh_migration_check(monkeypatch):
    monkeypatch.setattr(health, "_migrations_current", False)


@pytest.mark.django_db
def test_healthz_answers_ok_when_everything_is_up(client, fresh_migration_check):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz_names_the_broker_when_it_is_down(client, monkeypatch, fresh_migration_check):
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_write_url", "redis://127.0.0.1:9/0")  # nothing listens on port 9
    monkeypatch.setattr(health, "BROKER_TIMEOUT_SECONDS", 0.5)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"] == {"database": "ok", "broker": "fail", "migrations": "ok"}
    assert set(body["failed"]) == {"broker"}
    # Readiness does not depend on the broker: the pages still serve while merges wait.
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_healthz_names_unapplied_migrations(client, monkeypatch, fresh_migration_check):
    from django.db.migrations.executor import MigrationExecutor

    waiting = Migration("0099_not_applied", "crm")
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [(waiting, False)])
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"] == "fail"
        assert "crm.0099_not_applied" in response.json()["failed"]["migrations"]


@pytest.mark.django_db
def test_healthz_names_the_database_when_it_is_down(client, monkeypatch, fresh_migration_check):
    from django.db.backends.base.base import BaseDatabaseWrapper

    def refuse(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "fail"
    assert "connection refused" in response.json()["failed"]["database"]
