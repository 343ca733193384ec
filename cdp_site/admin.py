from django.contrib import admin

from cdp_site.models import ApiToken, AuditEntry


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py create_api_token`; here they can be read and revoked."""

    list_display = ["token_prefix", "user", "name", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    fields = ["user", "name", "token_prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["user", "token_prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the actions they record, never here."""

    list_display = ["at", "actor", "action", "target_type", "target_id", "summary"]
    list_filter = ["action"]
    search_fields = ["actor", "action", "summary", "target_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
