"""Privacy requests over the REST API: list, create, retrieve; extend, confirm receipt, retry; and
the access archive download. Privacy officers only (model permissions through their role)."""

from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from cdp_site.audit import actor_of
from cdp_site.permissions import require_permissions
from consent.forms_requests import PrivacyRequestFilter
from consent.models import PrivacyRequest, PrivacyRequestStep
from consent.requests import (
    RequestInvalid,
    access_archive_open,
    privacy_request_confirm_receipt,
    privacy_request_create,
    privacy_request_extend,
    privacy_request_retry,
)

CAN_CHANGE = require_permissions("consent.view_privacyrequest", "consent.change_privacyrequest")
CAN_VIEW = require_permissions("consent.view_privacyrequest")


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = PrivacyRequestStep
        fields = ["name", "started_at", "finished_at", "outcome", "detail"]


class PrivacyRequestSerializer(serializers.ModelSerializer):
    """A request as staff see it: deadlines and progress. Identifiers are write-only (`type:value`
    strings); responses name their types only. One serializer in and out, so the schema has one
    component (and one enum per choice set)."""

    identifiers = serializers.ListField(
        child=serializers.CharField(),
        allow_empty=False,
        write_only=True,
        help_text='The person\'s identifiers: ["email:ana@example.com", "phone:+353 1 555 0100"].',
    )
    received_at = serializers.DateTimeField(
        required=False, help_text="When the person's request reached you (deadlines count from it). Default: now."
    )
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    identifier_types = serializers.ListField(child=serializers.CharField(), source="subject_types", read_only=True)
    effective_due_at = serializers.DateTimeField(read_only=True)
    is_overdue = serializers.BooleanField(source="overdue", read_only=True)
    is_receipt_overdue = serializers.BooleanField(source="receipt_overdue", read_only=True)
    profiles_found = serializers.SerializerMethodField()
    has_archive = serializers.SerializerMethodField()
    steps = StepSerializer(many=True, read_only=True)

    class Meta:
        model = PrivacyRequest
        fields = [
            "id",
            "kind",
            "regulation",
            "status",
            "identifiers",
            "received_at",
            "due_at",
            "extended_until",
            "effective_due_at",
            "extension_reason",
            "extension_notified_at",
            "receipt_due_at",
            "receipt_confirmed_at",
            "is_overdue",
            "is_receipt_overdue",
            "requested_by",
            "identifier_types",
            "profiles_found",
            "error",
            "started_at",
            "completed_at",
            "has_archive",
            "steps",
        ]
        read_only_fields = [
            "status",
            "due_at",
            "extended_until",
            "extension_reason",
            "extension_notified_at",
            "receipt_due_at",
            "receipt_confirmed_at",
            "error",
            "started_at",
            "completed_at",
        ]

    def validate_received_at(self, value):
        if value > timezone.now():
            raise serializers.ValidationError("A request cannot be received in the future.")
        return value

    def get_profiles_found(self, request) -> int:
        return len(request.profiles_found)

    def get_has_archive(self, request) -> bool:
        return bool(request.kind == PrivacyRequest.ACCESS and request.archive_path)


class ExtendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="The reason the person is told.")
    notified = serializers.BooleanField(help_text="The person has been told of the extension and why.")


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50


class PrivacyRequestViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Deletion and access requests. Creating one starts it in the background."""

    queryset = PrivacyRequest.objects.select_related("requested_by").prefetch_related("steps")
    serializer_class = PrivacyRequestSerializer
    filterset_class = PrivacyRequestFilter
    pagination_class = NewestFirst

    def create(self, request, *args, **kwargs):
        payload = PrivacyRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            created = privacy_request_create(**payload.validated_data, actor=actor_of(request), user=request.user)
        except RequestInvalid as error:
            raise ValidationError({"identifiers": error.errors}) from error
        return Response(PrivacyRequestSerializer(created).data, status=status.HTTP_201_CREATED)

    def _answer(self, call) -> Response:
        try:
            changed = call()
        except RequestInvalid as error:
            return Response({"detail": error.errors}, status=status.HTTP_400_BAD_REQUEST)
        changed = self.get_queryset().get(pk=changed.pk)
        return Response(PrivacyRequestSerializer(changed).data)

    @extend_schema(request=ExtendSerializer, responses={200: PrivacyRequestSerializer, 400: OpenApiResponse()})
    @action(detail=True, methods=["post"], permission_classes=[CAN_CHANGE])
    def extend(self, request, pk=None):
        """Take the one extension the regulation allows (within the first period, person told)."""
        payload = ExtendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        privacy_request = self.get_object()
        return self._answer(
            lambda: privacy_request_extend(request=privacy_request, actor=actor_of(request), **payload.validated_data)
        )

    @extend_schema(request=None, responses={200: PrivacyRequestSerializer, 400: OpenApiResponse()})
    @action(detail=True, methods=["post"], url_path="confirm-receipt", permission_classes=[CAN_CHANGE])
    def confirm_receipt(self, request, pk=None):
        """Record that the person was told their request was received."""
        privacy_request = self.get_object()
        return self._answer(lambda: privacy_request_confirm_receipt(request=privacy_request, actor=actor_of(request)))

    @extend_schema(request=None, responses={200: PrivacyRequestSerializer, 400: OpenApiResponse()})
    @action(detail=True, methods=["post"], permission_classes=[CAN_CHANGE])
    def retry(self, request, pk=None):
        """Resume a failed request at the step that failed."""
        privacy_request = self.get_object()
        return self._answer(lambda: privacy_request_retry(request=privacy_request, actor=actor_of(request)))

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, 404: OpenApiResponse()})
    @action(detail=True, methods=["get"], permission_classes=[CAN_VIEW])
    def archive(self, request, pk=None):
        """The access request's ZIP archive; every download is audited."""
        privacy_request = self.get_object()
        try:
            handle = access_archive_open(request=privacy_request, actor=actor_of(request))
        except RequestInvalid as error:
            return Response({"detail": str(error)}, status=status.HTTP_404_NOT_FOUND)
        return FileResponse(handle, as_attachment=True, filename=f"access-request-{privacy_request.pk}.zip")
