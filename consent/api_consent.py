"""Consent over the REST API: read and record consent records; withdrawal propagation figures."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from activations.models import SuppressionApplied
from cdp_site.audit import actor_of
from cdp_site.permissions import require_permissions
from consent.domain import PURPOSES
from consent.models import ConsentRecord
from consent.propagation import LATENCY_DAYS, failures_open, latency_since, propagation_summary
from consent.recording import API, ConsentInvalid, consent_record
from profiles.selectors import profile_resolve

CAN_SEE_PROPAGATION = require_permissions("activations.view_suppressionapplied")


# -- serializers ------------------------------------------------------------------------------------


# Inline in the schema: the destinations' `consent_purpose` already names this choice set, and one
# set under two enum names is a schema warning.
@extend_schema_field({"type": "string", "enum": [slug for slug, _ in PURPOSES]})
class PurposeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=PURPOSES, **kwargs)


class SuppressionSerializer(serializers.ModelSerializer):
    """Where one withdrawal was suppressed, and when."""

    destination = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    sync = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    purpose = PurposeField(read_only=True)

    class Meta:
        model = SuppressionApplied
        fields = [
            "consent_record",
            "profile_id",
            "purpose",
            "destination",
            "sync",
            "operation",
            "status",
            "requested_at",
            "applied_at",
            "latency_ms",
            "captured_latency_ms",
            "attempts",
            "next_attempt_at",
            "message",
        ]
        read_only_fields = fields


class ConsentRecordSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    purpose = PurposeField(read_only=True)
    suppressions = SuppressionSerializer(many=True, read_only=True, help_text="Withdrawals: per destination.")

    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "profile",
            "purpose",
            "is_granted",
            "source",
            "captured_at",
            "recorded_at",
            "scope",
            "evidence",
            "suppressions",
        ]
        read_only_fields = fields


class ConsentRecordCreateSerializer(serializers.Serializer):
    profile = serializers.IntegerField(min_value=1, help_text="Profile id (a merged-away id records on its survivor).")
    purpose = PurposeField()
    is_granted = serializers.BooleanField(help_text="true: granted; false: withdrawn.")
    captured_at = serializers.DateTimeField(required=False, help_text="When the person said it; default now.")
    scope = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    evidence = serializers.JSONField(required=False, help_text="An object; `recorded_by` is set by the server.")

    def validate_evidence(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError('An object, e.g. {"form": "newsletter-2026"}.')
        return value


class LatencyFiguresSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    max_ms = serializers.FloatField(allow_null=True)


class DestinationPropagationSerializer(serializers.Serializer):
    destination = serializers.CharField(source="destination.slug")
    name = serializers.CharField(source="destination.name")
    purpose = serializers.CharField()
    latency = LatencyFiguresSerializer()
    statuses = serializers.DictField(child=serializers.IntegerField(), help_text="Rows per status in the period.")


class PropagationSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    days = serializers.IntegerField()
    overall = LatencyFiguresSerializer(help_text="Applied removals: recorded withdrawal to destination answer.")
    destinations = DestinationPropagationSerializer(many=True)
    open_failures = serializers.IntegerField()
    awaiting = serializers.IntegerField(help_text="Withdrawals not propagated yet (the sweeper picks them up).")
    failures = SuppressionSerializer(many=True, help_text="Open failures, oldest first.")


# -- filters and views ------------------------------------------------------------------------------


class ConsentRecordFilter(django_filters.FilterSet):
    profile = django_filters.NumberFilter(method="filter_profile", help_text="Profile id (merged-away ids follow).")
    purpose = django_filters.ChoiceFilter(choices=PURPOSES)
    is_granted = django_filters.BooleanFilter()

    class Meta:
        model = ConsentRecord
        fields = ["profile", "purpose", "is_granted"]

    def filter_profile(self, queryset, name, value):
        profile = profile_resolve(profile_id=int(value))
        return queryset.filter(profile_id=profile.pk if profile else int(value))


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50


class ConsentRecordViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Consent records, newest first (append-only: no update or delete). POST records consent from
    the REST API; a withdrawal is propagated to destinations at once."""

    queryset = ConsentRecord.objects.select_related("source").prefetch_related(
        Prefetch(
            "suppressions",
            queryset=SuppressionApplied.objects.select_related("destination", "sync").order_by("destination_id", "id"),
        )
    )
    serializer_class = ConsentRecordSerializer
    filterset_class = ConsentRecordFilter
    pagination_class = NewestFirst
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(request=ConsentRecordCreateSerializer, responses={201: ConsentRecordSerializer})
    def create(self, request, *args, **kwargs):
        given = ConsentRecordCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        values = dict(given.validated_data)
        try:
            record = consent_record(
                profile=values.pop("profile"),
                channel=API,
                actor=actor_of(request),
                **values,
            )
        except ConsentInvalid as error:
            raise ValidationError(error.errors) from error
        record = self.get_queryset().get(pk=record.pk)
        return Response(ConsentRecordSerializer(record).data, status=status.HTTP_201_CREATED)


class ConsentPropagationViewSet(viewsets.GenericViewSet):
    """Withdrawal propagation latency (p50/p95/max ms) overall and per destination, and open
    failures: the consent propagation page's figures."""

    queryset = SuppressionApplied.objects.none()
    serializer_class = PropagationSerializer
    permission_classes = [CAN_SEE_PROPAGATION]
    pagination_class = None
    filter_backends = []

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description=f"Look-back in days (default {LATENCY_DAYS}).")],
        responses=PropagationSerializer,
    )
    def list(self, request):
        text = request.query_params.get("days", "")
        if text and not text.isdigit():
            raise ValidationError({"days": ["A number of days."]})
        days = min(max(int(text), 1), 366) if text else LATENCY_DAYS
        summary = propagation_summary(since=latency_since(days))
        data = {**summary, "days": days, "failures": list(failures_open())}
        return Response(PropagationSerializer(data).data)
