"""Segments over the REST API: list, create, versions, publish, roll back, diff, preview."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from cdp_site import pii
from cdp_site.permissions import require_permissions
from segments import domain
from segments.api.serializers import (
    ComputedTraitSerializer,
    PreviewRequestSerializer,
    PreviewSerializer,
    SegmentCreateSerializer,
    SegmentSerializer,
    SegmentVersionSerializer,
    VersionCreateSerializer,
    VersionNumberSerializer,
)
from segments.computed import ComputedTraitInvalid, computed_trait_create
from segments.models import ComputedTrait, Segment
from segments.selectors import segment_list, segment_preview
from segments.services import (
    SegmentDefinitionInvalid,
    segment_create,
    segment_publish,
    segment_rollback,
    segment_validate,
    segment_version_create,
)

CAN_VERSION = require_permissions("segments.add_segmentversion", "segments.change_segment")


def _author(request) -> str:
    return f"user:{request.user.get_username()}"


def _invalid(error: SegmentDefinitionInvalid) -> Response:
    """400 with each problem and the condition it points at."""
    return Response(
        {"definition": [{"path": e.path, "message": e.message} for e in error.errors]},
        status=status.HTTP_400_BAD_REQUEST,
    )


class SegmentViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Segment.objects.none()
    serializer_class = SegmentSerializer
    lookup_field = "slug"
    pagination_class = None

    def get_queryset(self):
        return segment_list().order_by("name")

    @extend_schema(request=SegmentCreateSerializer, responses={201: SegmentSerializer})
    def create(self, request, *args, **kwargs):
        payload = SegmentCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            segment = segment_create(**data, author=_author(request), owner=request.user)
        except SegmentDefinitionInvalid as error:
            return _invalid(error)
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["get"],
        responses=SegmentVersionSerializer(many=True),
        parameters=[OpenApiParameter("slug", str, "path")],
    )
    @extend_schema(methods=["post"], request=VersionCreateSerializer, responses={201: SegmentVersionSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request, slug=None):
        segment = self.get_object()
        if request.method == "GET":
            return Response(SegmentVersionSerializer(segment.versions.order_by("-number"), many=True).data)
        self.check_permissions_for(request, CAN_VERSION)
        payload = VersionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            version, created = segment_version_create(
                segment=segment, author=_author(request), **payload.validated_data
            )
        except SegmentDefinitionInvalid as error:
            return _invalid(error)
        return Response(
            SegmentVersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def check_permissions_for(self, request, permission_class) -> None:
        if not permission_class().has_permission(request, self):
            self.permission_denied(request)

    @extend_schema(request=VersionNumberSerializer, responses=SegmentSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CAN_VERSION])
    def publish(self, request, slug=None):
        segment = self.get_object()
        payload = VersionNumberSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        version = segment.versions.filter(number=payload.validated_data["number"]).first()
        if version is None:
            raise ValidationError({"number": [f"{segment.slug} has no version {payload.validated_data['number']}."]})
        try:
            segment = segment_publish(segment=segment, version=version)
        except SegmentDefinitionInvalid as error:
            return _invalid(error)
        return Response(SegmentSerializer(segment).data)

    @extend_schema(request=VersionNumberSerializer, responses={201: SegmentVersionSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CAN_VERSION])
    def rollback(self, request, slug=None):
        segment = self.get_object()
        payload = VersionNumberSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            version = segment_rollback(segment=segment, author=_author(request), **payload.validated_data)
        except SegmentDefinitionInvalid as error:
            return _invalid(error)
        except ValueError as error:
            raise ValidationError({"number": [str(error)]}) from error
        return Response(SegmentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses={200: {"type": "object", "properties": {"diff": {"type": "string"}}}},
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, slug=None):
        segment = self.get_object()
        versions = {}
        for name in ("from", "to"):
            text = request.query_params.get(name, "")
            version = segment.versions.filter(number=int(text)).first() if text.isdigit() else None
            if version is None:
                raise ValidationError({name: [f"A version number of {segment.slug}."]})
            versions[name] = version
        return Response({"diff": domain.definition_diff(versions["from"].definition, versions["to"].definition)})

    @extend_schema(request=PreviewRequestSerializer, responses=PreviewSerializer)
    @action(detail=False, methods=["post"], permission_classes=[require_permissions("segments.view_segment")])
    def preview(self, request):
        """Count and sample of a definition before it is saved (the builder calls this)."""
        payload = PreviewRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        definition = payload.validated_data["definition"]
        errors = segment_validate(definition=definition, slug=None)
        if errors:
            return _invalid(SegmentDefinitionInvalid(errors))
        preview = segment_preview(definition=definition)
        for row in preview["sample"]:  # masked, as everywhere in the API without ?reveal=1
            row["traits"] = pii.traits_masked(row["traits"] or {})
        return Response(PreviewSerializer(preview).data)


class ComputedTraitViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Computed traits: list, read, create (validated like a segment's event condition)."""

    queryset = ComputedTrait.objects.all()
    serializer_class = ComputedTraitSerializer
    lookup_field = "key"
    pagination_class = None

    def create(self, request, *args, **kwargs):
        payload = ComputedTraitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            # event_type is optional in the serializer (predictive kinds read all events).
            trait = computed_trait_create(**{"event_type": "", **payload.validated_data})
        except ComputedTraitInvalid as error:
            return Response(
                {"definition": [{"path": e.path, "message": e.message} for e in error.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(ComputedTraitSerializer(trait).data, status=status.HTTP_201_CREATED)
