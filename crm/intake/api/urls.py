"""Routes of the intake API, mounted at /api/."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from .views import LeadIntakeView, MessageIntakeView

app_name = "api"

urlpatterns = [
    path("leads/", LeadIntakeView.as_view(), name="leads"),
    path("messages/", MessageIntakeView.as_view(), name="messages"),
    # The schema is public: integrators read it before they have a token.
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
]
