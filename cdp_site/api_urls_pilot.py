"""Pilot gates API routes (under /api/v1/)."""

from django.urls import path

from cdp_site.api_pilot import PilotGatesView, PilotHandoffView

urlpatterns = [
    path("pilot/gates/", PilotGatesView.as_view(), name="pilot-gates"),
    path("pilot/handoff/", PilotHandoffView.as_view(), name="pilot-handoff"),
]
