"""The project's admin site: Django's, with the sidebar's list of applications kept per user for a minute.

Every admin page builds the list of applications and models the user may use (the navigation sidebar, the index):
the permission checks of 33 model admins, a reverse() of two URLs each, and sorting by translated names. It was
a tenth of a customer card's CPU time (bench/README.md, "The card"). The list depends on the user's permissions,
the language and the URL prefix, so it is kept for that key as caching kind 4 of docs/ARCHITECTURE.md says (shown
to a person only, never a decision; keyed by what changes it; a timeout as the bound of staleness), in the
process rather than the shared cache: it holds model classes, and reading it back would cost what it saves. A
permission granted or taken away changes the key at once; what an admin decides from the data (the repeat-sales
settings' "Add" while none exists) shows at most APP_LIST_SECONDS late in the sidebar, never in what the pages
themselves allow.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import get_script_prefix
from django.utils.translation import get_language

# How long one user's list is kept, and for how many keys at most (the oldest dropped first).
APP_LIST_SECONDS = 60
APP_LIST_KEYS = 512


class MergewiseAdminSite(admin.AdminSite):
    """Django's admin site with the application list of each user kept for APP_LIST_SECONDS."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._app_lists: OrderedDict[tuple, tuple[float, list]] = OrderedDict()
        self._app_lists_lock = threading.Lock()

    def get_app_list(self, request, app_label=None):
        key = self._app_list_key(request)
        if app_label is not None or key is None:
            return super().get_app_list(request, app_label)
        now = time.monotonic()
        kept = self._app_lists.get(key)
        if kept is not None and now - kept[0] < APP_LIST_SECONDS:
            return kept[1]
        app_list = super().get_app_list(request)
        with self._app_lists_lock:
            self._app_lists[key] = (now, app_list)
            self._app_lists.move_to_end(key)
            while len(self._app_lists) > APP_LIST_KEYS:
                self._app_lists.popitem(last=False)
        return app_list

    def app_list_forget(self) -> None:
        """Forget the kept lists (tests, a permission change made in this process)."""
        with self._app_lists_lock:
            self._app_lists.clear()

    @staticmethod
    def _app_list_key(request) -> tuple | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        # A superuser may do everything (and reading all the permissions would cost a query); anyone else's list
        # follows their permissions, read once per request by the admin's checks anyway.
        permissions = "*" if user.is_superuser else frozenset(user.get_all_permissions())
        return (user.pk, user.is_active, user.is_staff, permissions, get_language(), get_script_prefix())


class MergewiseAdminConfig(AdminConfig):
    """django.contrib.admin with MergewiseAdminSite as `admin.site`."""

    default_site = "config.admin_site.MergewiseAdminSite"
