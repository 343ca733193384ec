from django.urls import path

from profiles import views, views_csv

app_name = "profiles"
urlpatterns = [
    path("profiles/", views.profile_list, name="profile_list"),
    path("profiles/<int:pk>/", views.profile_detail, name="profile_detail"),
    path("sources/", views.source_list, name="source_list"),
    path("sources/new/", views.source_new, name="source_new"),
    path("sources/<slug:slug>/", views.source_detail, name="source_detail"),
    path("sources/<slug:slug>/rotate/", views.source_rotate, name="source_rotate"),
    path("sources/<slug:slug>/retire-secrets/", views.source_retire_secrets, name="source_retire_secrets"),
    path("raw-events/", views.raw_event_list, name="raw_event_list"),
    path("raw-events/replay/", views.raw_event_replay, name="raw_event_replay"),
    path("raw-events/<int:pk>/", views.raw_event_detail, name="raw_event_detail"),
    path("schema-drift/", views.schema_drift, name="schema_drift"),
    path("csv-imports/", views_csv.csv_import_list, name="csv_import_list"),
    path("csv-imports/new/", views_csv.csv_import_new, name="csv_import_new"),
    path("csv-imports/<int:pk>/", views_csv.csv_import_detail, name="csv_import_detail"),
    path("csv-imports/<int:pk>/progress/", views_csv.csv_import_progress, name="csv_import_progress"),
]
