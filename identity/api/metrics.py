"""GET /api/v1/identity/metrics/: the current match-rate figures and their stored history."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.permissions import require_permissions
from identity.metrics import HISTORY_DEFAULT, HISTORY_MAX, identity_metric_history, identity_metrics


class SnapshotSerializer(serializers.Serializer):
    captured_at = serializers.DateTimeField()
    figures = serializers.JSONField()


class IdentityMetricsView(APIView):
    permission_classes = [require_permissions("identity.view_identitymetricsnapshot")]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "history",
                int,
                description=f"Snapshots to return, newest last (default {HISTORY_DEFAULT}, at most "
                f"{HISTORY_MAX}; 0 for none).",
            )
        ],
        responses=inline_serializer(
            "IdentityMetrics",
            {"current": serializers.JSONField(), "history": SnapshotSerializer(many=True)},
        ),
    )
    def get(self, request):
        text = request.query_params.get("history", str(HISTORY_DEFAULT))
        if not text.isdigit() or int(text) > HISTORY_MAX:
            raise ValidationError({"history": [f"A whole number from 0 to {HISTORY_MAX}."]})
        history = identity_metric_history(limit=int(text))
        return Response({"current": identity_metrics(), "history": SnapshotSerializer(history, many=True).data})
