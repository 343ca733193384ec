from django.contrib import admin

from cdp_site.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by `manage.py create_api_token`; here they can be read and revoked."""

    list_display = ["token_prefix", "user", "name", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    fields = ["user", "name", "token_prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["user", "token_prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False
