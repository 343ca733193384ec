"""Data governance pages, under the `governance` namespace."""

from django.urls import path

from cdp_site import views_governance

app_name = "governance"
urlpatterns = [
    path("governance/retention/", views_governance.retention, name="retention"),
    path(
        "governance/retention/<slug:data_class>/",
        views_governance.retention_policy_edit,
        name="retention_policy_edit",
    ),
    path("governance/profile-health/", views_governance.profile_health, name="profile_health"),
    path("governance/profile-health/run/", views_governance.profile_health_run_now, name="profile_health_run"),
]
