"""The segment builder's routes; included in segments/urls.py (app_name "segments")."""

from django.urls import path

from segments import views_builder

urlpatterns = [
    path("segments/builder/", views_builder.builder_new, name="builder_new"),
    path("segments/builder/update/", views_builder.builder_update, name="builder_update"),
    path("segments/builder/save/", views_builder.builder_save, name="builder_save"),
    path("segments/<slug:slug>/builder/", views_builder.builder_edit, name="builder_edit"),
]
