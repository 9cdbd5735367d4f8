"""The real production server process: gunicorn with production settings serves the health check, an admin page
and the admin's CSS through WhiteNoise (collected, hashed and compressed), then stops."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, **headers) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def server_env(tmp_path, django_db_blocker):
    """Production settings on a migrated database: PostgreSQL's test database in CI, a fresh SQLite file here."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL": "false",
            "STATIC_ROOT": str(tmp_path / "static"),
            "CELERY_FILESYSTEM_DIR": str(tmp_path / "celery"),
            "LOG_LEVEL": "INFO",
        }
    )
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            settings = connection.settings_dict  # pytest-django's migrated test database
            env["DATABASE_URL"] = (
                f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/"
                f"{settings['NAME']}"
            )
        else:
            env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'production.sqlite3'}"
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env,
                           check=True, timeout=300)
    # The stack's start-up collects the static files (compressed, with hashed names) before the server starts.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True,
                   timeout=300)
    return env


@pytest.mark.django_db
def test_gunicorn_serves_health_admin_and_static_files(server_env, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "gunicorn.log", "w+")
    server = subprocess.Popen(
        # As Procfile.prod starts it: the config file (gthread, preloaded app), fewer processes for the test.
        [str(BIN / "gunicorn"), "config.wsgi", "-c", "config/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", "2"],
        cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                status, _headers, body = fetch(f"{base}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.3)

        assert status == 200, body
        assert body == b'{"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}}'
        assert fetch(f"{base}/readyz")[0] == 200
        # Requests at once, more than processes x threads: each thread of each process has its database connection
        # (the pool), and none fails.
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(lambda _i: fetch(f"{base}/healthz")[0], range(36)))
        assert statuses == [200] * 36

        status, headers, body = fetch(f"{base}/admin/login/")
        assert status == 200
        page = body.decode()
        assert "csrfmiddlewaretoken" in page
        assert headers["Server"].startswith("gunicorn")
        # The page links the hashed name of the admin's CSS (the manifest), served by WhiteNoise.
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
        assert css, page
        status, headers, body = fetch(base + css.group(1))
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        assert "immutable" in headers["Cache-Control"]
        assert b"--body-bg" in body  # the admin's own stylesheet
        status, headers, compressed = fetch(base + css.group(1), **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert len(compressed) < len(body)
        assert fetch(f"{base}/static/admin/css/no-such-file.css")[0] == 404
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0
    log.seek(0)
    lines = log.read()
    assert "Using worker: gthread" in lines
    # Production logs one JSON line per request, with its duration and the CPU time of the thread that served it.
    assert '"logger": "mergewise.request", "msg": "request", "method": "GET", "path": "/admin/login/", "status": 200' in lines
    login = next(json.loads(line) for line in lines.splitlines() if '"path": "/admin/login/"' in line)
    assert 0 < login["cpu_ms"] <= login["duration_ms"]
    # and the SQL statements it sent, with their time (the health check reads the database and its migrations)
    health = next(json.loads(line) for line in lines.splitlines() if '"path": "/healthz"' in line)
    assert health["queries"] >= 2
    assert 0 < health["db_ms"] <= health["duration_ms"]


def test_procfile_starts_gunicorn_with_its_config_file():
    # The settings tested above are the ones the stack runs with.
    web = next(line for line in (ROOT / "Procfile.prod").read_text().splitlines() if line.startswith("web:"))
    assert "-c config/gunicorn.conf.py" in web


def _procfile(name: str) -> str:
    return next(line for line in (ROOT / "Procfile.prod").read_text().splitlines() if line.startswith(f"{name}:"))[
        len(name) + 1 :
    ].strip()


def _gunicorn_settings(command: str, **environ: str) -> dict[str, str]:
    """Run a Procfile command as honcho does (a shell) with gunicorn's --print-config: the settings it would serve
    with."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WEB_", "API_"))}
    env.update(environ, PATH=f"{BIN}:{env.get('PATH', '')}")
    printed = subprocess.run(["sh", "-c", f"{command} --print-config"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120, check=True).stdout
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed, re.MULTILINE))
    return {name: settings[name] for name in ("bind", "workers", "threads", "worker_class", "preload_app")}


def test_procfile_serves_the_intake_api_on_a_gunicorn_of_its_own():
    # The web's server and the API's are the same app and config file, with their own port, processes and threads.
    web, api = _procfile("web"), _procfile("api")
    assert _gunicorn_settings(web) == {
        "bind": "['127.0.0.1:8000']", "workers": "3", "threads": "4", "worker_class": "gthread", "preload_app": "True",
    }
    assert "gunicorn config.wsgi -c config/gunicorn.conf.py" in api
    assert _gunicorn_settings(api) == {
        "bind": "['127.0.0.1:8001']", "workers": "2", "threads": "2", "worker_class": "gthread", "preload_app": "True",
    }
    # make prod's environment (var/prod.env) names the same defaults, and they move the API's server only
    from config.prod_env import DEFAULTS

    assert (DEFAULTS["API_PORT"], DEFAULTS["API_CONCURRENCY"], DEFAULTS["API_THREADS"]) == ("8001", "2", "2")
    moved = {"API_PORT": "8123", "API_CONCURRENCY": "1", "API_THREADS": "3", "WEB_HOST": "127.0.0.2"}
    api_moved = _gunicorn_settings(api, **moved)
    assert (api_moved["bind"], api_moved["workers"], api_moved["threads"]) == ("['127.0.0.2:8123']", "1", "3")
    assert _gunicorn_settings(web, **moved)["bind"] == "['127.0.0.2:8000']"
