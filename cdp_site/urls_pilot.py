"""Pilot gates (go/no-go) and the handoff pack."""

from django.urls import path  # noqa: F401

app_name = "pilot"

urlpatterns = []
