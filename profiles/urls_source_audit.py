"""Source audit pages: per-source figures, the onboarding scorecard and the integration plan."""

from django.urls import path  # noqa: F401

app_name = "source_audit"

urlpatterns = []
