from django.contrib import admin

from identity.models import BlockedValue, Identifier, IdentifierType, IdentityLink, Merge


@admin.register(IdentifierType)
class IdentifierTypeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "role", "normaliser", "limit_per_profile", "priority", "is_pii"]


@admin.register(BlockedValue)
class BlockedValueAdmin(admin.ModelAdmin):
    list_display = ["value", "identifier_type", "reason"]
    list_filter = ["identifier_type"]


@admin.register(Identifier)
class IdentifierAdmin(admin.ModelAdmin):
    list_display = ["id", "identifier_type", "display_value", "profile", "is_verified", "last_seen_at"]
    list_filter = ["identifier_type", "is_verified"]
    raw_id_fields = ["profile", "source"]
    exclude = ["encrypted_value", "lookup_hash"]
    readonly_fields = ["display_value"]


@admin.register(IdentityLink)
class IdentityLinkAdmin(admin.ModelAdmin):
    list_display = ["id", "from_identifier", "to_identifier", "kind", "status", "confidence", "rule", "created_at"]
    list_filter = ["status", "kind", "rule"]
    raw_id_fields = ["from_identifier", "to_identifier"]


@admin.register(Merge)
class MergeAdmin(admin.ModelAdmin):
    list_display = ["id", "survivor", "absorbed", "rule", "actor", "confidence", "created_at"]
    list_filter = ["rule"]
    readonly_fields = [f.name for f in Merge._meta.fields]
