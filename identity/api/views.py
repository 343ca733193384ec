"""Merges, unmerges and the review queue over the REST API. Writes go through identity.services."""

import django_filters
from django import forms
from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from cdp_site.permissions import require_permissions
from identity.api.serializers import (
    IdentityLinkSerializer,
    MergeDetailSerializer,
    ReviewDecisionResultSerializer,
    ReviewDecisionSerializer,
    UnmergeRequestSerializer,
    UnmergeSerializer,
)
from identity.filtersets import ReviewLinkFilter
from identity.models import IdentityLink, Merge, Unmerge
from identity.services import IdentityActionError, link_approve, link_reject, merge_unmerge


class NewestFirst(CursorPagination):
    ordering = ["-id"]
    page_size = 50


def _actor(request) -> str:
    return f"user:{request.user.get_username()}"


def _conflict(error: IdentityActionError) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)


class ProfileIdFilter(django_filters.NumberFilter):
    """A whole, in-range id: a Decimal like -3.6e274 overflowed SQLite's INTEGER (a 500) before."""

    field_class = forms.IntegerField


class MergeFilter(django_filters.FilterSet):
    profile = ProfileIdFilter(
        method="filter_profile", min_value=1, max_value=2**63 - 1, help_text="Merges a profile took part in."
    )
    rule = django_filters.CharFilter()
    unmerged = django_filters.BooleanFilter(field_name="unmerged_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Merge
        fields = ["profile", "rule", "unmerged"]

    def filter_profile(self, queryset, name, value):
        return queryset.filter(Q(survivor_id=value) | Q(absorbed_id=value))


class MergeViewSet(viewsets.ReadOnlyModelViewSet):
    """Every merge with its evidence and confidence; `unmerge` undoes one exactly."""

    queryset = Merge.objects.all()
    serializer_class = MergeDetailSerializer
    filterset_class = MergeFilter
    pagination_class = NewestFirst

    @extend_schema(
        request=UnmergeRequestSerializer,
        responses={201: UnmergeSerializer},
        parameters=[OpenApiParameter("id", int, "path")],
    )
    @action(detail=True, methods=["post"], permission_classes=[require_permissions("identity.add_unmerge")])
    def unmerge(self, request, pk=None):
        merge = self.get_object()
        payload = UnmergeRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            unmerge = merge_unmerge(merge_id=merge.pk, actor=_actor(request), reason=payload.validated_data["reason"])
        except IdentityActionError as error:
            return _conflict(error)
        return Response(UnmergeSerializer(unmerge).data, status=status.HTTP_201_CREATED)


class UnmergeViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Unmerge.objects.all()
    serializer_class = UnmergeSerializer
    pagination_class = NewestFirst


class IdentityLinkFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=IdentityLink.STATUSES)
    kind = django_filters.ChoiceFilter(choices=IdentityLink.KINDS)
    rule = django_filters.CharFilter()
    confidence_below = django_filters.NumberFilter(field_name="confidence", lookup_expr="lt")
    confidence_at_least = django_filters.NumberFilter(field_name="confidence", lookup_expr="gte")

    class Meta:
        model = IdentityLink
        fields = ["status", "kind", "rule", "confidence_below", "confidence_at_least"]


class OldestFirst(CursorPagination):
    ordering = ["created_at", "id"]
    page_size = 50


class ReviewQueueList(generics.ListAPIView):
    """The review queue, oldest first: pending links and conflicts (merges a limit blocked), with
    the same filters as the page (status, source, rule, kind, confidence band, age)."""

    queryset = IdentityLink.objects.select_related(
        "from_identifier__identifier_type",
        "from_identifier__source",
        "to_identifier__identifier_type",
        "to_identifier__source",
    )
    serializer_class = IdentityLinkSerializer
    filterset_class = ReviewLinkFilter
    pagination_class = OldestFirst
    permission_classes = [require_permissions("identity.view_identitylink")]


class IdentityLinkViewSet(viewsets.ReadOnlyModelViewSet):
    """Links of the identity graph. `?status=pending_review&status=blocked` is the review queue."""

    queryset = IdentityLink.objects.select_related(
        "from_identifier__identifier_type",
        "from_identifier__source",
        "to_identifier__identifier_type",
        "to_identifier__source",
    )
    serializer_class = IdentityLinkSerializer
    filterset_class = IdentityLinkFilter
    pagination_class = NewestFirst

    def _decide(self, request, decide):
        link = self.get_object()
        payload = ReviewDecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            merge = decide(link_id=link.pk, actor=_actor(request), note=payload.validated_data["note"])
        except IdentityActionError as error:
            return _conflict(error)
        link = self.get_queryset().get(pk=link.pk)
        return Response(ReviewDecisionResultSerializer({"link": link, "merge": merge}).data)

    @extend_schema(request=ReviewDecisionSerializer, responses=ReviewDecisionResultSerializer)
    @action(detail=True, methods=["post"], permission_classes=[require_permissions("identity.change_identitylink")])
    def approve(self, request, pk=None):
        return self._decide(request, link_approve)

    @extend_schema(request=ReviewDecisionSerializer, responses=ReviewDecisionResultSerializer)
    @action(detail=True, methods=["post"], permission_classes=[require_permissions("identity.change_identitylink")])
    def reject(self, request, pk=None):
        def reject(**kwargs):
            link_reject(**kwargs)

        return self._decide(request, reject)
