"""Every app's API routes, under /api/v1/."""

from django.urls import include, path

urlpatterns = [
    path("", include("profiles.api.urls")),
    path("", include("identity.api.urls")),
    path("", include("identity.api.urls_metrics")),
    path("", include("segments.api.urls")),
    path("", include("activations.api.urls")),
]
