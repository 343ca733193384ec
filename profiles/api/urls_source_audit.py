"""Source audit API routes (under /api/v1/)."""

from django.urls import path

from profiles.api.views_source_audit import SourceAuditRunView, SourceAuditView

urlpatterns = [
    path("sources/audit/", SourceAuditView.as_view(), name="source-audit"),
    path("sources/audit/run/", SourceAuditRunView.as_view(), name="source-audit-run"),
]
