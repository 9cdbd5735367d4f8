"""URL configuration: the admin is the product."""
from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static as static_url
from django.urls import include, path
from django.views.generic import RedirectView

from config import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Duplicate control's endpoints (notification poll) behind the admin login; before the admin's catch-all.
    path("admin/dedup/", include("dedup.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("crm.intake.api.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # Browsers ask for /favicon.ico whatever the page links; the admin's pages link the SVG itself.
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static_url("dedup/favicon.svg"))),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
