"""The audit log over the REST API: read-only, with the page's filters (actor, action, target, dates,
free text). Readable with `cdp_site.view_auditentry`."""

from rest_framework import serializers, viewsets
from rest_framework.pagination import CursorPagination
from rest_framework.routers import SimpleRouter

from cdp_site.filtersets_audit import AuditEntryFilter
from cdp_site.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "target_type", "target_id", "summary", "detail"]
        read_only_fields = fields


class NewestFirst(CursorPagination):
    ordering = ["-id"]
    page_size = 50


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Staff actions, newest first: merges, unmerges, reveals, exports, consent edits, deletions,
    destination and secret changes. Entries are never changed or deleted."""

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    pagination_class = NewestFirst


router = SimpleRouter()
router.register("audit-log", AuditEntryViewSet, basename="audit-entry")
urlpatterns = router.urls
