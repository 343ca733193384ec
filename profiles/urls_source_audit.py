"""Source audit pages: per-source figures, the onboarding scorecard and the integration plan."""

from django.urls import path

from profiles import views_source_audit

app_name = "source_audit"

urlpatterns = [
    path("sources/audit/", views_source_audit.audit, name="audit"),
    path("sources/audit/run/", views_source_audit.run, name="run"),
    path("sources/integration-plan/", views_source_audit.integration_plan, name="integration_plan"),
    path("sources/<slug:slug>/audit/", views_source_audit.source_audit, name="source_audit"),
]
