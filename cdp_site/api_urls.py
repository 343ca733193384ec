"""Every app's API routes, under /api/v1/."""

from django.urls import include, path

from cdp_site.views_metrics import OperationsMetricsView

urlpatterns = [
    # Before profiles.api.urls: its sources/<slug>/ route would take "audit" for a slug.
    path("", include("profiles.api.urls_source_audit")),
    path("", include("profiles.api.urls")),
    path("", include("identity.api.urls")),
    path("", include("identity.api.urls_metrics")),
    path("", include("segments.api.urls")),
    path("", include("activations.api.urls")),
    path("", include("consent.api_consent_urls")),
    path("", include("consent.api.urls_requests")),
    path("", include("cdp_site.api_audit")),
    path("", include("cdp_site.api_urls_operations")),
    path("", include("cdp_site.api_urls_pilot")),
    path("operations/metrics/", OperationsMetricsView.as_view(), name="operations-metrics"),
]
