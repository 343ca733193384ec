from django.db.models import Q
from django.shortcuts import redirect
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from cdp_site import pii
from cdp_site.audit import actor_of, audit_record
from cdp_site.permissions import require_permissions
from consent.sealing import profiles_unseal
from identity import domain
from identity.models import Merge
from identity.selectors import identifier_find, parse_identifier_query
from profiles.api.filtersets import EventFilter, ProfileFilter
from profiles.api.serializers import (
    EventSerializer,
    ProfileDetailSerializer,
    ProfileListSerializer,
    RawEventDetailSerializer,
    RawEventSerializer,
    SourceSerializer,
)
from profiles.filtersets import RawEventFilter
from profiles.models import Event, Profile, RawEvent, Source
from profiles.processing import raw_events_replay
from profiles.selectors import profile_resolve


class NewestFirst(CursorPagination):
    ordering = ["-id"]
    page_size = 50


class TimelinePagination(CursorPagination):
    ordering = ["-occurred_at", "-id"]
    page_size = 50


class ProfileViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Profile.objects.filter(status=Profile.ACTIVE)
    serializer_class = ProfileListSerializer
    filterset_class = ProfileFilter
    pagination_class = NewestFirst

    def list(self, request, *args, **kwargs):
        request.resolved_identifiers = self._resolve_identifier(request.query_params.get("identifier"))
        return super().list(request, *args, **kwargs)

    def paginate_queryset(self, queryset):
        # Names are sealed traits: decrypt the page's in one vault query, not one per row.
        page = super().paginate_queryset(queryset)
        return profiles_unseal(page) if page is not None else None

    @staticmethod
    def _resolve_identifier(text):
        if not text:
            return []
        parsed = parse_identifier_query(text)
        if parsed is None:
            raise ValidationError({"identifier": ["Use type:value, e.g. email:ada@example.com."]})
        try:
            found = identifier_find(type_slug=parsed[0], raw_value=parsed[1])
        except LookupError as error:
            raise ValidationError({"identifier": [str(error)]}) from error
        except domain.InvalidIdentifier as error:
            raise ValidationError({"identifier": [f"{parsed[0]}: {error}"]}) from error
        return [found] if found else []

    @extend_schema(
        responses=ProfileDetailSerializer,
        parameters=[
            OpenApiParameter(
                "reveal",
                bool,
                description="1: personal data in cleartext (roles that may see it; each reveal is logged).",
            )
        ],
    )
    def retrieve(self, request, pk=None):
        reveal = request.query_params.get("reveal", "").lower() in ("1", "true")
        if reveal and not pii.can_see_pii(request.user):
            raise PermissionDenied("Your role may not see personal data in cleartext.")
        profile = profile_resolve(profile_id=int(pk)) if str(pk).isdigit() else None
        if profile is None or profile.status != Profile.ACTIVE:
            raise NotFound(f"No profile {pk}.")
        if profile.pk != int(pk):
            # A merged-away id keeps working: it leads to the surviving profile. Temporary (302):
            # an unmerge makes the id answer again, so clients must not cache the redirect.
            query = f"?{request.META['QUERY_STRING']}" if request.META.get("QUERY_STRING") else ""
            return redirect(request.path.replace(f"/{pk}/", f"/{profile.pk}/", 1) + query)
        profile = Profile.objects.prefetch_related("identifiers__identifier_type", "identifiers__source").get(
            pk=profile.pk
        )
        if reveal:
            pii.profile_pii_reveal(profile=profile, actor=actor_of(request), where="api:profile-detail")
        context = {
            "source_slugs": dict(Source.objects.values_list("id", "slug")),
            "merges": Merge.objects.filter(Q(survivor=profile) | Q(absorbed=profile)).order_by("-created_at")[:100],
            "reveal": reveal,
        }
        return Response(ProfileDetailSerializer(profile, context=context).data)


class ProfileEventList(generics.ListAPIView):
    serializer_class = EventSerializer
    filterset_class = EventFilter
    pagination_class = TimelinePagination
    queryset = Event.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Event.objects.none()
        profile = profile_resolve(profile_id=self.kwargs["pk"])
        if profile is None:
            raise NotFound(f"No profile {self.kwargs['pk']}.")
        return Event.objects.filter(profile=profile).select_related("source")


class SourceViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Source.objects.select_related("owner").order_by("name")
    serializer_class = SourceSerializer
    lookup_field = "slug"
    pagination_class = None


class RawEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = RawEvent.objects.select_related("source")
    filterset_class = RawEventFilter
    pagination_class = NewestFirst

    def get_serializer_class(self):
        return RawEventDetailSerializer if self.action in ("retrieve", "replay") else RawEventSerializer

    def retrieve(self, request, pk=None):
        """The payload as received: in cleartext for roles that may see personal data (logged), else masked."""
        raw = self.get_object()
        reveal = pii.can_see_pii(request.user)
        if reveal:
            audit_record(
                actor=actor_of(request), action="raw_event.view", target=raw, summary=f"Read raw event {raw.pk}"
            )
        return Response(RawEventDetailSerializer(raw, context={"reveal": reveal}).data)

    @extend_schema(request=None, responses=RawEventDetailSerializer, parameters=[OpenApiParameter("id", int, "path")])
    @action(detail=True, methods=["post"], permission_classes=[require_permissions("profiles.change_rawevent")])
    def replay(self, request, pk=None):
        raw = self.get_object()
        if raw.status not in (RawEvent.QUARANTINED, RawEvent.FAILED):
            return Response(
                {"detail": f"Only quarantined or failed raw events are replayed; this one is {raw.status}."},
                status=status.HTTP_409_CONFLICT,
            )
        raw_events_replay(raw_event_ids=[raw.pk])
        raw.refresh_from_db()
        return Response(RawEventDetailSerializer(raw).data)
