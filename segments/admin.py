from django.contrib import admin

from segments.models import Segment, SegmentVersion


class SegmentVersionInline(admin.TabularInline):
    model = SegmentVersion
    fields = ["number", "note", "author", "created_at", "definition_hash"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False  # versions are written by the segment services, which validate them


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "published_version", "is_suppression", "holdout_percent", "updated_at"]
    list_filter = ["is_suppression"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "published_version", "created_at", "updated_at"]
    inlines = [SegmentVersionInline]

    def has_add_permission(self, request):
        return False  # created through the pages, the API or `segments apply`, which validate definitions


@admin.register(SegmentVersion)
class SegmentVersionAdmin(admin.ModelAdmin):
    list_display = ["segment", "number", "author", "note", "created_at"]
    readonly_fields = [f.name for f in SegmentVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
