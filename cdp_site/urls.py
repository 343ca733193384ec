from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from cdp_site import views
from cdp_site.login_security import LockoutLoginView
from profiles import views as profiles_views

urlpatterns = [
    path("", views.home, name="home"),
    # Django's auth pages, with a log-in view that rate-limits and locks out (cdp_site/login_security.py).
    path("accounts/login/", LockoutLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
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
    path("", include("cdp_site.urls_tokens")),
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

handler404 = "cdp_site.views.page_not_found"
