"""Settings shared by every environment; everything that varies comes from the environment."""
from django.utils.translation import gettext_lazy as _

from config.env import BASE_DIR, VAR_DIR, env

# --- Core -------------------------------------------------------------------
# The default key is public (it is in the repository): for local use only; production.py refuses it.
LOCAL_SECRET_KEY = "local-insecure-key-change-me"
SECRET_KEY = env("DJANGO_SECRET_KEY", default=LOCAL_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.admin_site.MergewiseAdminConfig",  # django.contrib.admin, its sidebar kept per user
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_filters",
    "import_export",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "crm",
    "dedup",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app itself (compressed and hashed in production), ahead of everything but security.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Django's form renderer with its commonest widget templates rendered by functions giving the same HTML
# (config/renderers.py): an admin card renders hundreds of widgets.
FORM_RENDERER = "config.renderers.FastTemplatesRenderer"

# --- Database ---------------------------------------------------------------
# SQLite is the embedded default; set DATABASE_URL=postgres://... in production and CI.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mergewise.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# The connection policy must never run the database out of connections:
# - here (the threaded dev server, the worker, commands): one connection per request or task, closed at its end
#   (CONN_MAX_AGE 0), so connections never outnumber the requests in flight. DATABASE_CONN_MAX_AGE=60 keeps them
#   instead (one per thread, for the in-process benchmarks), which under the threaded server piles idle ones up.
# - production.py: a psycopg pool per process (DATABASE_POOL_*), bounded, reused across requests.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; the timeout rides out short write locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # SQLite has no row locks: IMMEDIATE takes the write lock when a transaction starts, so two merges
            # (web + worker) serialise instead of failing half-way with "database is locked".
            "transaction_mode": "IMMEDIATE",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Languages --------------------------------------------------------------
# The language follows the browser's Accept-Language, as the Django admin does.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
# Locally WhiteNoise finds files in the apps (no collectstatic); production serves the collected, hashed ones.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
MEDIA_URL = "media/"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))

# --- Celery -----------------------------------------------------------------
# Embedded default: Celery's filesystem transport under var/, nothing to install.
# Production and CI: CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_FILESYSTEM_DIR = env("CELERY_FILESYSTEM_DIR", default=str(VAR_DIR / "celery"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{CELERY_FILESYSTEM_DIR}/queue",
        "data_folder_out": f"{CELERY_FILESYSTEM_DIR}/queue",
        "processed_folder": f"{CELERY_FILESYSTEM_DIR}/processed",
        "control_folder": f"{CELERY_FILESYSTEM_DIR}/control",
        "store_processed": False,
    }
    _default_result_backend = f"file://{CELERY_FILESYSTEM_DIR}/results"
else:
    _default_result_backend = CELERY_BROKER_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message a worker took but never acknowledged (it was killed) comes back after this long. Longer
        # than the longest task (a 100,000-record scan chunk takes a minute or two, a 160,000-row merge half
        # a minute), or a slow task would run twice; the sweeper (dedup.jobs_sweep, every minute) ends the
        # jobs of dead workers long before, so this only bounds how late a redelivery can come.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=30 * 60),
        "socket_connect_timeout": 2,
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=_default_result_backend)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Three queues, so that a click never waits behind a scan or behind the figures: "interactive" for what a person
# waits for (a merge, an undo, folding a "not a duplicate" decision, the sweeper of stalled jobs, the health check),
# "figures" for refreshing the stored duplicate figures after a commit, and "bulk" for work over the whole base (the
# scan's plan, chunks and join, index backfills and rebuilds, rebuilding every record's figures after a rule
# change). On one queue the workers took tasks in order, and merges queued behind a scan's hundreds of chunks: 7 of
# 100 done in 5 minutes at 1,000,000 customers (bench/README.md, 2026-12-05 23:47). With the refreshes on the
# interactive queue, even at its lowest priority, a merge waited up to 100 s whenever both of its worker's processes
# were in refreshes that waited for the scan's rebuild of the figures (one transaction of 80 s holding the rows they
# write; bench/README.md, 2026-12-06, branch wt-intake): a priority decides what is taken next, not what holds the
# processes. A worker started without -Q consumes every queue (the embedded default: served in turn, so a merge
# waits for at most the task in hand); production runs a worker of its own on each (Procfile.prod), so neither a
# scan nor a refresh can occupy the merges' processes. A task not named here goes to "bulk", where a long one
# cannot hold up a merge.
_INTERACTIVE, _FIGURES, _BULK = "interactive", "figures", "bulk"
CELERY_TASK_QUEUES = {name: {"exchange": name, "routing_key": name} for name in (_INTERACTIVE, _FIGURES, _BULK)}
CELERY_TASK_DEFAULT_QUEUE = _BULK
CELERY_TASK_ROUTES = {
    **{
        name: {"queue": _INTERACTIVE}
        for name in (
            "dedup.tasks.merge_job_run",
            "dedup.tasks.merge_undo_run",
            "dedup.scoring_decisions_fold",
            "dedup.jobs_sweep",
            "crm.health_check",
        )
    },
    # Lowest priority (Redis: a message of a lower priority is taken only when none of a higher one waits; 0, the
    # default, is the highest) for a worker that consumes the figures' queue with others (-Q interactive,figures).
    "dedup.counts_refresh": {"queue": _FIGURES, "priority": 9},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A worker's CPU priority, and its PostgreSQL backends' where the database is on this host: "idle" (Linux's
# SCHED_IDLE) or a niceness; empty leaves them alone. Procfile.prod: the bulk worker idle, the interactive and the
# figures ones 5.
# Why: config/worker_priority.py.
WORKER_CPU_PRIORITY = env("WORKER_CPU_PRIORITY", default="")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A click must never hang on a broker that is down: sending a task tries twice within about a second, then
# fails, and the job or scan it was for fails at once with the reason (dedup/dispatch.py `on_failure`).
# Workers are not affected: they reconnect on their own (broker_connection_retry).
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# The Redis result backend subscribes to every task sent; by default it retries 20 times a second apart.
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
}

# --- Import / export --------------------------------------------------------
# An import is one transaction: a bad row means nothing of the file is written.
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
# Files uploaded to the admin's import are untrusted: these limits are checked before a row is parsed
# (crm/importing/files.py). The admin imports a row at a time (about 3 ms a row); bigger files go through
# `manage.py import_csv`, which writes in bulk and has no row limit.
IMPORT_MAX_FILE_BYTES = env.int("IMPORT_MAX_FILE_BYTES", default=10 * 2**20)
# An XLSX is a zip: what it unpacks to is limited too (a zip bomb is small packed).
IMPORT_MAX_UNPACKED_BYTES = env.int("IMPORT_MAX_UNPACKED_BYTES", default=100 * 2**20)
IMPORT_MAX_ROWS = env.int("IMPORT_MAX_ROWS", default=20_000)
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=200)
# The import preview lists this many rows and counts the rest.
IMPORT_PREVIEW_ROWS = env.int("IMPORT_PREVIEW_ROWS", default=100)

# --- Phones and duplicate control -------------------------------------------
# National numbers without a country code ("8 912 345-67-89") are read in this region.
DEDUP_DEFAULT_REGION = env("DEDUP_DEFAULT_REGION", default="RU")
# Threads the scored matcher grades fields and blocks on, and whether a large base's phones are read by a
# child process meanwhile (dedup/engine/scoring/workers.py): 0 = the cores this process may use (at most 4),
# 1 = one thread and no child, as before.
DEDUP_SCORING_WORKERS = env.int("DEDUP_SCORING_WORKERS", default=0)

# --- Intake API -------------------------------------------------------------
# Integrations authenticate with a per-integration token created in the admin; nothing else is accepted.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["crm.intake.api.authentication.IntegrationTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["crm.intake.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mergewise intake API",
    "DESCRIPTION": "Incoming leads and messenger messages, checked for duplicates before they become records.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "LeadChannelEnum": "crm.models.sales.Lead.Channel",
        "MessengerChannelEnum": "crm.models.contacts.MessengerHandle.Channel",
    },
}
# A webhook body larger than this is refused with 413 before it is parsed.
INTAKE_MAX_BODY_BYTES = env.int("INTAKE_MAX_BODY_BYTES", default=64 * 1024)
# Deeper JSON is refused (400) before it is parsed: far deeper than any lead, far below Python's recursion limit.
INTAKE_MAX_JSON_DEPTH = env.int("INTAKE_MAX_JSON_DEPTH", default=32)

# --- Logging ----------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}
