"""Pilot gates (go/no-go) and the handoff pack."""

from django.urls import path

from cdp_site import views_pilot

app_name = "pilot"

urlpatterns = [
    path("pilot/gates/", views_pilot.gates, name="gates"),
    path("pilot/signoffs/", views_pilot.signoff_new, name="signoff_new"),
    path("pilot/settings/", views_pilot.settings_edit, name="settings"),
    path("pilot/handoff/", views_pilot.handoff, name="handoff"),
    path("pilot/handoff/download/", views_pilot.handoff_download, name="handoff_download"),
]
