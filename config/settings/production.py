"""Production: everything from the environment, no insecure defaults.

The documented environment (README, "Production"): DJANGO_SECRET_KEY (50+ random characters), DATABASE_URL to
PostgreSQL, CELERY_BROKER_URL to Redis, DJANGO_ALLOWED_HOSTS and DJANGO_CSRF_TRUSTED_ORIGINS for the public name,
TLS at the proxy in front (X-Forwarded-Proto). With it `manage.py check --deploy` is clean. `make prod` runs the
same settings over plain HTTP on one machine and says so (DJANGO_SECURE_SSL=false).
"""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import DATABASES, LOCAL_SECRET_KEY, env

# --- Core -------------------------------------------------------------------
SECRET_KEY = env("DJANGO_SECRET_KEY")
if SECRET_KEY == LOCAL_SECRET_KEY:
    # The local key is in the repository: sessions, password reset links and signed cookies would be forgeable.
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is the public local key; production needs a secret one.")
DEBUG = False

# --- HTTPS ------------------------------------------------------------------
# TLS ends at the proxy, which says so in X-Forwarded-Proto. DJANGO_SECURE_SSL=false is for a stack served over
# plain HTTP on one machine (`make prod`): no redirect, no HSTS, cookies without the Secure flag.
SECURE_SSL = env.bool("DJANGO_SECURE_SSL", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = SECURE_SSL
# The load balancer's checks come over plain HTTP from inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=SECURE_SSL)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [
    # Joining the browsers' HSTS preload list is a decision about the whole domain, for its owner, not a default.
    "security.W021",
]
if not SECURE_SSL:
    # Served over plain HTTP on purpose (the single-machine stack): the checks that assume TLS do not apply.
    SILENCED_SYSTEM_CHECKS += ["security.W004", "security.W008", "security.W012", "security.W016"]

# --- Static files -----------------------------------------------------------
# Collected by `collectstatic` (the stack's start-up), served by WhiteNoise with hashed names (cached for ever)
# and gzip/brotli variants.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = False

# --- Database connections ---------------------------------------------------
# One bounded psycopg pool per process, reused across requests (CONN_MAX_AGE must be 0 with a pool). A gunicorn
# process serves WEB_THREADS requests at once (gthread, config/gunicorn.conf.py), each holding one connection, so
# its pool holds that many (a thread waiting for a connection would queue the request); a Celery prefork child
# runs one task at a time and opens only what it uses (min_size 1). The whole stack needs at most
# (web processes + worker processes + beat) x DATABASE_POOL_MAX_SIZE connections, which must stay below
# PostgreSQL's max_connections (100 by default) with room for psql and migrations.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool("DATABASE_POOL", default=True):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Checked by the pool before it is lent, by its socket rather than by an empty query (Django's check with
    # CONN_HEALTH_CHECKS: a round trip more for every request): Django's backend with that check (config/postgresql;
    # config/db_pool.py says what each check sees).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=max(2, env.int("WEB_THREADS", default=4))),
        # Connections above min_size are closed after this long idle.
        "max_idle": env.float("DATABASE_POOL_MAX_IDLE", default=60.0),
        # A request waits this long for a free connection, then fails instead of queueing for ever.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }

# --- Logging ----------------------------------------------------------------
# One JSON line per request (config.logs.RequestLogMiddleware) and per Celery task (config.logs' signal
# handlers), with the job, run or chunk id when there is one; everything else as JSON lines too.
MIDDLEWARE = ["config.logs.RequestLogMiddleware", *MIDDLEWARE]  # noqa: F405  (first: it times the whole request)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # the worker logs through LOGGING below, as JSON
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {
        "mergewise.request": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "mergewise.task": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The request line already says 4xx/5xx; Django's own line would repeat it (errors still log a traceback).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
