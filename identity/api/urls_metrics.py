from django.urls import path

from identity.api.metrics import IdentityMetricsView

urlpatterns = [
    path("identity/metrics/", IdentityMetricsView.as_view(), name="identity-metrics"),
]
