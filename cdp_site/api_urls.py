"""Every app's API routes, under /api/v1/."""

from django.urls import include, path

urlpatterns = [
    path("", include("profiles.api.urls")),
    path("", include("identity.api.urls")),
    path("", include("identity.api.urls_metrics")),
    path("", include("segments.api.urls")),
    path("", include("activations.api.urls")),
    path("", include("consent.api_consent_urls")),
    path("", include("consent.api.urls_requests")),
    path("", include("cdp_site.api_audit")),
]
