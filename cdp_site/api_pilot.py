"""GET /api/v1/pilot/gates/ (the go/no-go checklist as JSON) and GET /api/v1/pilot/handoff/ (the ZIP).

Token or session. The gates need `cdp_site.view_pilotsignoff` (marketers, privacy officers,
integration engineers); the handoff pack needs `profiles.view_source` and
`activations.view_destination` (integration engineers), like its page, and is audited as an export.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.permissions import require_permissions
from cdp_site.pilot_gates import pilot_gates_evaluate
from cdp_site.views_metrics import AnyAccept
from cdp_site.views_pilot import GATES_PERMISSION, HANDOFF_PERMISSIONS, handoff_response


class PilotGatesView(APIView):
    permission_classes = [require_permissions(GATES_PERMISSION)]

    @extend_schema(
        summary="Pilot gates: the go/no-go verdict and every gate with its evidence",
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="verdict, settings, gates")},
    )
    def get(self, request):
        return Response(pilot_gates_evaluate().as_dict(), headers={"Cache-Control": "no-store"})


class PilotHandoffView(APIView):
    permission_classes = [require_permissions(*HANDOFF_PERMISSIONS)]
    # Clients ask for application/zip; errors still answer in JSON.
    content_negotiation_class = AnyAccept

    @extend_schema(
        summary="The handoff pack (ZIP) built from the live configuration; audited as an export",
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="ZIP archive")},
    )
    def get(self, request):
        return handoff_response(request)
