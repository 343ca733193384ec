from django.urls import path

from activations import views, views_destinations, views_lift, views_syncs, views_triggers

app_name = "activations"
urlpatterns = [
    path("destinations/", views_destinations.destination_list, name="destination_list"),
    path("destinations/new/", views_destinations.destination_new, name="destination_new"),
    path("destinations/<slug:slug>/", views_destinations.destination_detail, name="destination_detail"),
    path("destinations/<slug:slug>/edit/", views_destinations.destination_edit, name="destination_edit"),
    path("destinations/<slug:slug>/test/", views_destinations.destination_test_view, name="destination_test"),
    path("syncs/", views_syncs.sync_list, name="sync_list"),
    path("syncs/new/", views_syncs.sync_new, name="sync_new"),
    path("syncs/<slug:slug>/", views_syncs.sync_detail, name="sync_detail"),
    path("syncs/<slug:slug>/edit/", views_syncs.sync_edit, name="sync_edit"),
    path("syncs/<slug:slug>/run/", views_syncs.sync_run_view, name="sync_run"),
    path("syncs/<slug:slug>/lift/", views_lift.sync_lift, name="sync_lift"),
    path("sync-runs/<int:pk>/", views_syncs.run_detail, name="run_detail"),
    path("sync-runs/<int:pk>/run-anyway/", views_syncs.run_resume, name="run_resume"),
    path("sync-runs/<int:pk>/retry-failed/", views_syncs.run_retry_failed, name="run_retry_failed"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("reconciliation.csv", views.reconciliation_csv, name="reconciliation_csv"),
    path("runbook/", views.runbook_page, name="runbook"),
    path("runbook.md", views.runbook_download, name="runbook_download"),
    path("triggers/", views_triggers.trigger_list, name="trigger_list"),
    path("triggers/new/", views_triggers.trigger_new, name="trigger_new"),
    path("triggers/<slug:slug>/", views_triggers.trigger_detail, name="trigger_detail"),
    path("triggers/<slug:slug>/edit/", views_triggers.trigger_edit, name="trigger_edit"),
    path("triggers/<slug:slug>/lift/", views_lift.trigger_lift, name="trigger_lift"),
]
