"""The health dashboard (trends) and alerts."""

from django.urls import path  # noqa: F401

app_name = "operations"

urlpatterns = []
