from django.urls import path

from cdp_site.views_metrics import PrometheusMetricsView

urlpatterns = [
    path("metrics", PrometheusMetricsView.as_view(), name="prometheus-metrics"),
]
