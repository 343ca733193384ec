from django.contrib import admin

from cdp_site.models import Alert, AlertRule, ApiToken, AuditEntry, OperationsSnapshot


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py create_api_token`; here they can be read and revoked."""

    list_display = ["token_prefix", "user", "name", "scopes", "is_active", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["is_active"]
    fields = [
        "user",
        "name",
        "token_prefix",
        "scopes",
        "is_active",
        "expires_at",
        "revoked_at",
        "created_at",
        "last_used_at",
    ]
    # Unticking "is active" revokes; scopes and expiry are set when the token is issued.
    readonly_fields = ["user", "token_prefix", "scopes", "expires_at", "revoked_at", "created_at", "last_used_at"]

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


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the task and the pages that audit them, never here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyAdmin):
    """Rules are managed on /operations/alerts/ (audited). The signing secret is never shown."""

    list_display = ["name", "metric", "label", "comparison", "threshold", "consecutive", "is_active", "created_by"]
    list_filter = ["is_active", "metric"]
    exclude = ["webhook_secret"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "rule", "label", "status", "value_at_raise", "last_value", "raised_at", "webhook_status"]
    list_filter = ["status", "webhook_status"]
    list_select_related = ["rule"]


@admin.register(OperationsSnapshot)
class OperationsSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["captured_at", "slot", "duration_ms"]
    date_hierarchy = "captured_at"
