"""WSGI entry point: production settings unless DJANGO_SETTINGS_MODULE says otherwise.

A server pointed at this module (gunicorn, uWSGI, mod_wsgi) is a deployment; the local settings (DEBUG on, the
public key) are chosen only by manage.py and `make run`.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
