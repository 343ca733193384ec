from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from cdp_site import views
from profiles import views as profiles_views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    # Ingestion: the Segment-compatible tracking API and signed webhooks.
    path("v1/", include("profiles.tracking.urls")),
    path("webhooks/", include("profiles.webhooks.urls")),
    # REST API and its OpenAPI schema.
    path("api/v1/", include("cdp_site.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Back-office pages.
    path("", include("cdp_site.urls_audit")),
    path("", include("cdp_site.urls_metrics")),
    path("", include("cdp_site.urls_operations")),
    path("", include("cdp_site.urls_pilot")),
    path("", include("profiles.urls_source_audit")),
    # Personal data of one profile in cleartext, logged (POST from the Reveal buttons of any page).
    path("profiles/<int:pk>/reveal/", profiles_views.profile_reveal, name="profile_reveal"),
    path("", include("profiles.urls")),
    path("", include("identity.urls")),
    path("", include("segments.urls")),
    path("", include("activations.urls")),
    path("", include("cdp_site.urls_governance")),
    path("", include("consent.urls_consent")),
    path("", include("consent.urls_requests")),
]
