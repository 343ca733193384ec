"""Activations over the REST API: destinations, syncs and their runs, reconciliation, triggers."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from activations.api.serializers import (
    DestinationSerializer,
    DestinationTestSerializer,
    LatencySerializer,
    LiftSerializer,
    ProblemsSerializer,
    ReconciliationSerializer,
    RetryFailedSerializer,
    SyncBusySerializer,
    SyncRecordSerializer,
    SyncRunRequestSerializer,
    SyncRunSerializer,
    SyncSerializer,
    TriggerSendSerializer,
    TriggerSerializer,
)
from activations.destinations import DestinationInvalid, destination_save, destination_test
from activations.filtersets import SyncRecordFilter, SyncRunFilter, TriggerSendFilter
from activations.forms import LiftForm
from activations.lift import lift_for_sync, lift_for_trigger
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger, TriggerSend
from activations.selectors import (
    RECONCILIATION_DAYS,
    reconciliation_by_destination,
    reconciliation_runs,
    reconciliation_since,
)
from activations.syncs import SyncBusy, SyncNotReady, sync_problems, sync_run_retry_failed, sync_run_start
from activations.triggers import TriggerInvalid, trigger_latency, trigger_save
from cdp_site.audit import actor_of
from cdp_site.permissions import require_permissions

CAN_TEST_DESTINATION = require_permissions("activations.change_destination")
CAN_RUN = require_permissions("activations.add_syncrun")
CAN_SEE_RECORDS = require_permissions("activations.view_syncrun", "activations.view_syncrecord")
CAN_REPLAY = require_permissions("activations.change_syncrecord")
CAN_SEE_RECONCILIATION = require_permissions("activations.view_syncrun")
CAN_SEE_SYNC_LIFT = require_permissions("activations.view_sync", "activations.view_syncrun")
CAN_SEE_TRIGGER_LIFT = require_permissions("activations.view_trigger", "activations.view_triggersend")
LIFT_PARAMETERS = [
    OpenApiParameter("event_type", str, required=True, description="The conversion event type."),
    OpenApiParameter("window_days", int, description="Attribution window, 1-90 days (default 7)."),
    OpenApiParameter("since", str, description="First day of entries or sends, YYYY-MM-DD (default: all)."),
    OpenApiParameter("until", str, description="Last day of entries or sends, included, YYYY-MM-DD."),
    OpenApiParameter("where", str, description='Property filters as JSON: [{"property", "op", "value"}].'),
]
RECENT_RUNS = 200
WRITE_METHODS = ["get", "post", "patch", "head", "options"]


def _lift_response(request, measure, subject) -> Response:
    """Treatment vs holdout conversion; 400 naming the parameter on bad input."""
    form = LiftForm(request.query_params)
    if not form.is_valid():
        raise ValidationError({name: [str(message) for message in messages] for name, messages in form.errors.items()})
    try:
        result = measure(subject, **form.measure_kwargs())
    except ValueError as error:
        raise ValidationError({"detail": str(error)}) from error
    return Response(LiftSerializer(result.as_dict()).data)


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50


class InOrder(CursorPagination):
    ordering = "id"
    page_size = 50


def _actor(request) -> str:
    return f"api:{request.user.get_username()}"


class DestinationViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Destinations. `secrets` is write-only; responses carry `secret_names` only."""

    queryset = Destination.objects.select_related("owner").order_by("name")
    serializer_class = DestinationSerializer
    lookup_field = "slug"
    pagination_class = None
    http_method_names = WRITE_METHODS

    def _save(self, serializer, **extra):
        values = dict(serializer.validated_data)
        secrets = values.pop("secrets", None)
        try:
            serializer.instance = destination_save(
                destination=serializer.instance, secrets=secrets, actor=actor_of(self.request), **extra, **values
            )
        except DestinationInvalid as error:
            raise ValidationError(error.errors) from error

    def perform_create(self, serializer):
        self._save(serializer, owner=self.request.user)

    def perform_update(self, serializer):
        self._save(serializer)

    @extend_schema(request=None, responses=DestinationTestSerializer)
    @action(detail=True, methods=["post"], permission_classes=[CAN_TEST_DESTINATION])
    def test(self, request, slug=None):
        """One harmless authenticated request to the destination; the outcome is stored."""
        ok, message = destination_test(self.get_object(), actor=actor_of(request))
        return Response({"ok": ok, "message": message})


class SyncViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Syncs. Saving checks the mode and fields against the destination's contract."""

    queryset = Sync.objects.select_related("segment", "destination", "owner").order_by("name")
    serializer_class = SyncSerializer
    lookup_field = "slug"
    pagination_class = None
    http_method_names = WRITE_METHODS

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    @extend_schema(
        request=SyncRunRequestSerializer,
        responses={
            202: SyncRunSerializer,
            400: OpenApiResponse(ProblemsSerializer, description="The sync cannot run: the problems."),
            409: OpenApiResponse(SyncBusySerializer, description="A real run of this sync is unfinished."),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[CAN_RUN])
    def run(self, request, slug=None):
        """Start a run (or a dry run, which sends nothing); it is executed by a worker."""
        sync = self.get_object()
        payload = SyncRunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            run = sync_run_start(sync=sync, triggered_by=_actor(request), **payload.validated_data)
        except SyncBusy as error:
            return Response(
                {"detail": str(error), "run": SyncRunSerializer(error.run).data}, status=status.HTTP_409_CONFLICT
            )
        except SyncNotReady as error:
            return Response({"detail": sync_problems(sync) or [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        run.refresh_from_db()
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=LIFT_PARAMETERS, responses=LiftSerializer)
    @action(detail=True, methods=["get"], permission_classes=[CAN_SEE_SYNC_LIFT], filter_backends=[])
    def lift(self, request, slug=None):
        """Conversion of segment entrants outside the holdout vs the holdout, with lift and 95% intervals."""
        return _lift_response(request, lift_for_sync, self.get_object())


class SyncRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs, newest first; filter by sync slug, status and dry run."""

    queryset = SyncRun.objects.select_related("sync__destination", "segment_version")
    serializer_class = SyncRunSerializer
    filterset_class = SyncRunFilter
    pagination_class = NewestFirst

    @extend_schema(responses=SyncRecordSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        permission_classes=[CAN_SEE_RECORDS],
        queryset=SyncRecord.objects.order_by("id"),  # this action lists and filters records
        filterset_class=SyncRecordFilter,
        pagination_class=InOrder,
        serializer_class=SyncRecordSerializer,
    )
    def records(self, request, pk=None):
        """The run's records (one intended operation per person), filterable by status, operation and
        skip reason. Payloads are shown for dry runs only."""
        run = get_object_or_404(SyncRun, pk=pk)
        records = self.filter_queryset(SyncRecord.objects.filter(run=run))
        page = self.paginate_queryset(records)
        return self.get_paginated_response(SyncRecordSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={200: RetryFailedSerializer, 400: OpenApiResponse(description="The run cannot be replayed.")},
    )
    @action(detail=True, methods=["post"], url_path="retry-failed", permission_classes=[CAN_REPLAY])
    def retry_failed(self, request, pk=None):
        """Send a finished run's failed records again with fresh attempts."""
        run = get_object_or_404(SyncRun.objects.select_related("sync"), pk=pk)
        try:
            queued = sync_run_retry_failed(run=run)
        except SyncNotReady as error:
            return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        run.refresh_from_db()
        return Response({"queued": queued, "run": SyncRunSerializer(run).data})


class ReconciliationViewSet(viewsets.GenericViewSet):
    """Planned against applied, per destination and per recent real run (the reconciliation page's numbers)."""

    queryset = SyncRun.objects.none()
    serializer_class = ReconciliationSerializer
    permission_classes = [CAN_SEE_RECONCILIATION]
    pagination_class = None
    filter_backends = []

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description=f"Look-back in days (default {RECONCILIATION_DAYS}).")],
        responses=ReconciliationSerializer,
    )
    def list(self, request):
        text = request.query_params.get("days", "")
        if text and not text.isdigit():
            raise ValidationError({"days": ["A number of days."]})
        days = min(max(int(text), 1), 366) if text else RECONCILIATION_DAYS
        since = reconciliation_since(days)
        data = {
            "since": since,
            "days": days,
            "destinations": reconciliation_by_destination(since),
            "runs": list(reconciliation_runs(since)[:RECENT_RUNS]),
        }
        return Response(ReconciliationSerializer(data).data)


class TriggerViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Triggers. Saving checks the template against the destination's contract."""

    queryset = Trigger.objects.select_related("destination", "segment", "owner").order_by("name")
    serializer_class = TriggerSerializer
    lookup_field = "slug"
    pagination_class = None
    http_method_names = WRITE_METHODS

    def _save(self, serializer, **extra):
        try:
            serializer.instance = trigger_save(trigger=serializer.instance, **extra, **serializer.validated_data)
        except TriggerInvalid as error:
            raise ValidationError(error.errors) from error

    def perform_create(self, serializer):
        self._save(serializer, owner=self.request.user)

    def perform_update(self, serializer):
        self._save(serializer)

    @extend_schema(responses=LatencySerializer)
    @action(detail=True, methods=["get"])
    def latency(self, request, slug=None):
        """p50/p95/max milliseconds from the causing event's arrival to the destination's answer."""
        return Response(trigger_latency(self.get_object()))

    @extend_schema(parameters=LIFT_PARAMETERS, responses=LiftSerializer)
    @action(detail=True, methods=["get"], permission_classes=[CAN_SEE_TRIGGER_LIFT], filter_backends=[])
    def lift(self, request, slug=None):
        """Conversion of people sent the message vs people held back, with lift and 95% intervals."""
        return _lift_response(request, lift_for_trigger, self.get_object())


class TriggerSendViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Trigger sends, newest first; filter by trigger slug and status. Payloads are not exposed."""

    queryset = TriggerSend.objects.select_related("trigger")
    serializer_class = TriggerSendSerializer
    filterset_class = TriggerSendFilter
    pagination_class = NewestFirst
