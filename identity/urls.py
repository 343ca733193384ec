"""Back-office pages of the identity app, under the `identity` namespace."""

from django.urls import include, path

app_name = "identity"
urlpatterns = [
    path("", include("identity.urls_review")),
    path("", include("identity.urls_metrics")),
]
