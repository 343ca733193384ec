"""GET /metrics (Prometheus text) and GET /api/v1/operations/metrics/ (JSON): the operational figures.

Both take the API token (`Authorization: Token …`) or a session, and need `profiles.view_source`:
the integration engineers' permission over sources and their health (superusers have it too).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.operations_metrics import collect_figures, prometheus_text
from cdp_site.permissions import require_permissions

METRICS_PERMISSION = "profiles.view_source"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PrometheusRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "prometheus"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, str):
            return data.encode(self.charset)
        # Errors (401, 403): DRF's detail dict, as one line of text.
        detail = data.get("detail", data) if isinstance(data, dict) else data
        return f"{detail}\n".encode(self.charset)


class AnyAccept(BaseContentNegotiation):
    """Scrapers send various Accept headers (OpenMetrics first): always answer in the 0.0.4 text."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PrometheusMetricsView(APIView):
    permission_classes = [require_permissions(METRICS_PERMISSION)]
    renderer_classes = [PrometheusRenderer]
    content_negotiation_class = AnyAccept

    @extend_schema(
        summary="Operational figures in the Prometheus text format 0.0.4",
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Prometheus text")},
    )
    def get(self, request):
        return Response(
            prometheus_text(collect_figures()),
            content_type=PROMETHEUS_CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )


class OperationsMetricsView(APIView):
    permission_classes = [require_permissions(METRICS_PERMISSION)]

    @extend_schema(
        summary="Operational figures (ingestion, freshness, identity, activations, consent, deletion, worker)",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="Nested figures")},
    )
    def get(self, request):
        return Response(collect_figures())
