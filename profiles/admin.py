from django.contrib import admin, messages

from identity.admin import MergeConfidenceFilter
from profiles.models import CsvImport, Event, EventContract, Profile, RawEvent, SchemaDrift, Source, TraitValue
from profiles.processing import raw_events_replay


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "owner", "is_active", "priority", "freshness_sla_minutes"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]
    # Credentials are issued and rotated by the back-office pages and create_source, never typed here.
    readonly_fields = ["write_key_prefix", "secrets_rotated_at", "created_at"]
    exclude = ["write_key_hash", "signing_secrets"]

    def has_add_permission(self, request):
        return False  # creation issues credentials: use the Sources page or create_source


@admin.register(RawEvent)
class RawEventAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "external_id", "topic", "status", "attempts", "received_at"]
    list_filter = ["status", "source"]
    search_fields = ["external_id"]
    readonly_fields = [f.name for f in RawEvent._meta.fields]
    actions = ["replay"]

    @admin.action(description="Replay selected quarantined or failed raw events", permissions=["change"])
    def replay(self, request, queryset):
        replayed = raw_events_replay(raw_event_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"Replayed {replayed} raw events.", messages.SUCCESS)


@admin.register(EventContract)
class EventContractAdmin(admin.ModelAdmin):
    list_display = ["event_type", "is_active", "updated_at"]
    search_fields = ["event_type"]


@admin.register(SchemaDrift)
class SchemaDriftAdmin(admin.ModelAdmin):
    list_display = ["source", "event_type", "property_name", "occurrences", "last_seen_at"]
    list_filter = ["source", "event_type"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "lifecycle", "lifetime_revenue", "merge_confidence", "last_seen_at"]
    list_filter = ["status", "lifecycle", MergeConfidenceFilter]
    readonly_fields = [f.name for f in Profile._meta.fields]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "profile", "source", "occurred_at", "revenue"]
    list_filter = ["type", "source"]
    raw_id_fields = ["profile", "raw_event", "identifier"]
    readonly_fields = [f.name for f in Event._meta.fields]


@admin.register(TraitValue)
class TraitValueAdmin(admin.ModelAdmin):
    list_display = ["id", "profile", "key", "source", "observed_at", "is_verified"]
    list_filter = ["key", "source"]
    raw_id_fields = ["profile", "raw_event", "identifier"]


@admin.register(CsvImport)
class CsvImportAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "file_name", "status", "rows_read", "rows_rejected", "created_at"]
    list_filter = ["status"]
    # Validated against the file when the import starts, and cached by import id in the workers
    # (profiles/mappers/csv_rows.py): an edit here would be checked by nothing and seen by some workers.
    readonly_fields = ["mapping"]
