"""GET /api/v1/sources/audit/ (the latest source audit snapshot) and POST /api/v1/sources/audit/run/.

Integration engineers' permissions: reading needs `profiles.view_source`, running also
`profiles.change_source`.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.audit import actor_of
from cdp_site.permissions import require_permissions
from profiles.source_audit import source_audit_enqueue, source_audit_latest


def snapshot(run) -> dict:
    return {
        "id": run.pk,
        "created_at": run.created_at,
        "since": run.since,
        "window_days": run.window_days,
        "duration_ms": run.duration_ms,
        "triggered_by": run.triggered_by,
        "figures": run.figures,
    }


class SourceAuditView(APIView):
    permission_classes = [require_permissions("profiles.view_source")]

    @extend_schema(
        summary="The latest source audit: per-source figures, overlap, scorecard and ranking",
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The snapshot"),
            404: OpenApiResponse(description="No audit has run yet"),
        },
    )
    def get(self, request):
        run = source_audit_latest()
        if run is None:
            return Response(
                {"detail": "No source audit has run yet: POST /api/v1/sources/audit/run/."},
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(snapshot(run))


class SourceAuditRunView(APIView):
    permission_classes = [require_permissions("profiles.view_source", "profiles.change_source")]

    @extend_schema(
        summary="Run the source audit now (a django-q2 task); read the result from GET /api/v1/sources/audit/",
        request=None,
        responses={202: OpenApiResponse(OpenApiTypes.OBJECT, description="Queued")},
    )
    def post(self, request):
        source_audit_enqueue(triggered_by=actor_of(request))
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)
