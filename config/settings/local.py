"""Local development: the embedded defaults (SQLite, Celery's filesystem broker), DEBUG on."""
from .base import *  # noqa: F401,F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
