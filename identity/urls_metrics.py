"""Included by the lead under the `identity` namespace: identity:metrics, identity:simulation."""

from django.urls import path

from identity import views_metrics

urlpatterns = [
    path("identity/metrics/", views_metrics.metrics, name="metrics"),
    path("identity/simulation/", views_metrics.simulation, name="simulation"),
]
