# Two commands on a fresh machine: `make run` and `make test`; `make prod` for the production-like stack.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 2000

.PHONY: run prod prod-prepare test install setup messages clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Migrate, seed the demo base once, create the admin login and print it.
setup: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_demo --customers $(DEMO_CUSTOMERS) --url http://$(HOST):$(PORT)/admin/

# Web, Celery worker and beat on the embedded default (SQLite + Celery's filesystem broker).
run: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" WEB_HOST=$(HOST) WEB_PORT=$(PORT) honcho start -f Procfile

# The production-like stack on this machine: PostgreSQL and Redis (started if down), production settings with a
# secret generated once into var/, migrations, collectstatic, gunicorn (WEB_CONCURRENCY processes; the intake API
# on a gunicorn of its own, API_PORT and API_CONCURRENCY), Celery
# (WORKER_CONCURRENCY processes) and beat. PROD_DATABASE_URL, WEB_PORT, ... override the defaults
# (config/prod_env.py).
HONCHO_PROD := PATH="$(abspath $(VENV))/bin:$$PATH" honcho -e var/prod.env
prod-prepare: install
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	WEB_HOST=$(HOST) WEB_PORT=$(PORT) $(PY) -m config.prod_env
	$(HONCHO_PROD) run python manage.py migrate --noinput
	$(HONCHO_PROD) run python manage.py collectstatic --noinput -v0
	$(HONCHO_PROD) run python manage.py check --deploy --fail-level WARNING
	$(HONCHO_PROD) run python manage.py setup_demo --customers $(DEMO_CUSTOMERS) \
		--login-file var/prod_admin_login.txt --url http://$(HOST):$(PORT)/admin/

prod: prod-prepare
	@echo "intake API (a gunicorn of its own): http://$(HOST):$$(sed -n 's/^API_PORT=//p' var/prod.env)/api/"
	$(HONCHO_PROD) start -f Procfile.prod

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Recompile the translations after editing locale/*/LC_MESSAGES/django.po.
messages: install
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var/*.sqlite3* var/celery
