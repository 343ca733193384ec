"""Health dashboard trends and alerts API routes (under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from cdp_site.api_operations import AlertListView, AlertRuleViewSet, TrendsView

router = SimpleRouter()
router.register("operations/alert-rules", AlertRuleViewSet, basename="operations-alert-rule")

urlpatterns = [
    path("operations/trends/", TrendsView.as_view(), name="operations-trends"),
    path("operations/alerts/", AlertListView.as_view(), name="operations-alerts"),
    *router.urls,
]
