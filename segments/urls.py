from django.urls import path

from segments import urls_builder, views

app_name = "segments"
urlpatterns = [
    path("segments/", views.segment_index, name="segment_list"),
    path("segments/new/", views.segment_new, name="segment_new"),
    # Before the detail route: "segments/builder/" is not a segment.
    *urls_builder.urlpatterns,
    path("segments/<slug:slug>/", views.segment_detail, name="segment_detail"),
    path("segments/<slug:slug>/versions/", views.segment_version_new, name="segment_version_new"),
    path("segments/<slug:slug>/rollback/<int:number>/", views.segment_rollback_view, name="segment_rollback"),
]
