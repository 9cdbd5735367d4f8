# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CUSTOMERS ?= 2000

.PHONY: run test install setup messages clean

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

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Recompile the translations after editing locale/*/LC_MESSAGES/django.po.
messages: install
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var/*.sqlite3* var/celery
