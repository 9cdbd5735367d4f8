"""The project's admin site: Django's, with the sidebar's list of applications, and its HTML, kept per user for a
minute.

Every admin page builds the list of applications and models the user may use (the navigation sidebar, the index):
the permission checks of 33 model admins, a reverse() of two URLs each, and sorting by translated names. It was
a tenth of a customer card's CPU time (bench/README.md, "The card"). The list depends on the user's permissions,
the language and the URL prefix, so it is kept for that key as caching kind 4 of docs/ARCHITECTURE.md says (shown
to a person only, never a decision; keyed by what changes it; a timeout as the bound of staleness), in the
process rather than the shared cache: it holds model classes, and reading it back would cost what it saves. A
permission granted or taken away changes the key at once; what an admin decides from the data (the repeat-sales
settings' "Add" while none exists) shows at most APP_LIST_SECONDS late in the sidebar, never in what the pages
themselves allow.

The sidebar's HTML (`admin/app_list.html` over that list: 33 models, a dozen lookups each) is kept the same way,
keyed also on which of its links the page's path is under (the current application and model are marked): it was
2.5 ms of a card's CPU. The page's template renders `nav_app_list` (templates/admin/nav_sidebar.html).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.template.loader import get_template
from django.urls import get_script_prefix
from django.utils.functional import SimpleLazyObject
from django.utils.http import quote
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

# How long one user's list is kept, and for how many keys at most (the oldest dropped first).
APP_LIST_SECONDS = 60
APP_LIST_KEYS = 512


class Kept:
    """Values kept for APP_LIST_SECONDS per key, APP_LIST_KEYS keys at most (the oldest dropped first)."""

    def __init__(self):
        self._values: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, make):
        """The value kept for `key`, else what `make()` returns, kept."""
        now = time.monotonic()
        kept = self._values.get(key)
        if kept is not None and now - kept[0] < APP_LIST_SECONDS:
            return kept[1]
        value = make()
        with self._lock:
            self._values[key] = (now, value)
            self._values.move_to_end(key)
            while len(self._values) > APP_LIST_KEYS:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class MergewiseAdminSite(admin.AdminSite):
    """Django's admin site with the application list of each user, and its sidebar, kept for APP_LIST_SECONDS."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._app_lists = Kept()
        self._sidebars = Kept()

    def get_app_list(self, request, app_label=None):
        key = self._app_list_key(request)
        if app_label is not None or key is None:
            return super().get_app_list(request, app_label)
        build = super().get_app_list
        return self._app_lists.get(key, lambda: build(request))

    def each_context(self, request):
        context = super().each_context(request)
        app_list = context["available_apps"]
        context["nav_app_list"] = SimpleLazyObject(lambda: self._nav_app_list(request, app_list))
        return context

    def _nav_app_list(self, request, app_list) -> str:
        """The sidebar's `{% include 'admin/app_list.html' with app_list=available_apps show_changelinks=False %}`."""

        def render():
            return mark_safe(get_template("admin/app_list.html").render(
                {"app_list": app_list, "show_changelinks": False, "request": request}
            ))

        key = self._app_list_key(request)
        if key is None:
            return render()
        # The template marks the application and model whose URL is in the page's (URL-quoted) path.
        path = quote(request.path, safe="/")
        current = tuple(
            link in path for app in app_list for link in [app["app_url"], *(model.get("admin_url") or "" for
                                                                              model in app["models"])]
        )
        return self._sidebars.get((key, current), render)

    def app_list_forget(self) -> None:
        """Forget the kept lists and sidebars (tests, a permission change made in this process)."""
        self._app_lists.clear()
        self._sidebars.clear()

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
