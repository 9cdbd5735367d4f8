"""URLs of duplicate control outside the model admins, served under /admin/dedup/ behind the admin login."""
from django.contrib import admin
from django.urls import path

from . import views

app_name = "dedup"

urlpatterns = [
    path("notifications/poll/", admin.site.admin_view(views.notifications_poll), name="notifications_poll"),
    path("notifications/read/", admin.site.admin_view(views.notifications_read), name="notifications_read"),
    path("notifications/popped/", admin.site.admin_view(views.notifications_popped), name="notifications_popped"),
    path(
        "records/<int:content_type_id>/<str:pk>/state/",
        admin.site.admin_view(views.record_state),
        name="record_state",
    ),
]
