"""The health dashboard over the REST API: a metric's trend, the alerts, and the alert rules.

- GET /api/v1/operations/trends/?metric=<key>&range=24h|7d|30d[&label=<slug>]  (view_operationssnapshot)
- GET /api/v1/operations/alerts/[?status=open|resolved]                           (view_alert)
- GET/POST /api/v1/operations/alert-rules/, GET/PUT/PATCH/DELETE .../<id>/        (view/add/change/delete_alertrule)
"""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp_site.alerts import RULE_FIELDS, AlertRuleInvalid, alert_rule_delete, alert_rule_save
from cdp_site.audit import actor_of
from cdp_site.operations_models import Alert, AlertRule
from cdp_site.operations_trends import (
    DEFAULT_RANGE,
    METRICS,
    RANGES,
    metric_series,
    series_as_json,
    snapshots_in_range,
)
from cdp_site.permissions import require_permissions


class TrendsView(APIView):
    permission_classes = [require_permissions("cdp_site.view_operationssnapshot")]

    @extend_schema(
        summary="One metric's series over a range (at most 300 points per series)",
        parameters=[
            OpenApiParameter("metric", str, required=True, enum=sorted(METRICS), description="A catalogue key."),
            OpenApiParameter("range", str, enum=list(RANGES), description=f"Default {DEFAULT_RANGE}."),
            OpenApiParameter("label", str, description="Per-source or per-destination metrics: one slug only."),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The series and their points")},
    )
    def get(self, request):
        key = request.query_params.get("metric", "")
        range_key = request.query_params.get("range", DEFAULT_RANGE)
        errors = {}
        if key not in METRICS:
            errors["metric"] = [f"Choose one of: {', '.join(sorted(METRICS))}."]
        if range_key not in RANGES:
            errors["range"] = [f"Choose one of: {', '.join(RANGES)}."]
        if errors:
            raise ValidationError(errors)
        metric = METRICS[key]
        now = timezone.now()
        snapshots = snapshots_in_range(range_key=range_key, now=now)
        series = metric_series(metric, snapshots, label=request.query_params.get("label") or None)
        body = series_as_json(metric, series, range_key=range_key)
        body.update({"from": (now - RANGES[range_key]).isoformat(), "to": now.isoformat()})
        return Response(body)


class AlertSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    metric = serializers.CharField(source="rule.metric", read_only=True)
    comparison = serializers.CharField(source="rule.comparison", read_only=True)
    threshold = serializers.FloatField(source="rule.threshold", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "rule",
            "rule_name",
            "metric",
            "label",
            "comparison",
            "threshold",
            "status",
            "value_at_raise",
            "last_value",
            "raised_at",
            "resolved_at",
            "resolution",
            "webhook_event",
            "webhook_status",
            "webhook_attempts",
            "webhook_last_error",
            "webhook_delivered_at",
            "acknowledged_by",
            "acknowledged_at",
        ]
        read_only_fields = fields


class NewestFirst(CursorPagination):
    ordering = ("-raised_at", "-id")
    page_size = 50


class AlertListView(generics.ListAPIView):
    """Alerts, newest first; `?status=open` for the ones open now."""

    serializer_class = AlertSerializer
    pagination_class = NewestFirst
    permission_classes = [require_permissions("cdp_site.view_alert")]
    filter_backends = []

    def get_queryset(self):
        alerts = Alert.objects.select_related("rule")
        status = self.request.query_params.get("status")
        if status:
            if status not in (Alert.OPEN, Alert.RESOLVED):
                raise ValidationError({"status": ["Choose open or resolved."]})
            alerts = alerts.filter(status=status)
        return alerts

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=[Alert.OPEN, Alert.RESOLVED])],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AlertRuleSerializer(serializers.ModelSerializer):
    """`webhook_secret` is write-only (blank or absent keeps the stored one); responses only say
    whether one is stored."""

    metric = serializers.ChoiceField(choices=sorted(METRICS))
    webhook_secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, help_text="Write-only."
    )
    has_webhook_secret = serializers.BooleanField(read_only=True)

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "name",
            "metric",
            "label",
            "comparison",
            "threshold",
            "consecutive",
            "webhook_url",
            "webhook_secret",
            "has_webhook_secret",
            "is_active",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]


class AlertRuleViewSet(viewsets.ModelViewSet):
    """Alert rules over the metric catalogue. Every create, change and delete is audited."""

    queryset = AlertRule.objects.order_by("name", "id")
    serializer_class = AlertRuleSerializer
    pagination_class = None
    filter_backends = []

    def _save(self, serializer):
        values = dict(serializer.validated_data)
        secret = values.pop("webhook_secret", None)
        if serializer.instance is not None:  # PATCH: what is not sent stays as it is
            values = {**{name: getattr(serializer.instance, name) for name in RULE_FIELDS}, **values}
        try:
            serializer.instance = alert_rule_save(
                actor=actor_of(self.request), rule=serializer.instance, webhook_secret=secret or None, **values
            )
        except AlertRuleInvalid as error:
            raise ValidationError(error.errors) from error

    def perform_create(self, serializer):
        self._save(serializer)

    def perform_update(self, serializer):
        self._save(serializer)

    def perform_destroy(self, instance):
        alert_rule_delete(rule=instance, actor=actor_of(self.request))
