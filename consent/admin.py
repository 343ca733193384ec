from django.contrib import admin

from consent.models import ConsentRecord


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    """Append-only: records are read here, never changed or deleted (superusers included)."""

    list_display = ["id", "profile", "purpose", "is_granted", "source", "captured_at"]
    list_filter = ["purpose", "is_granted", "source"]
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_add_permission(self, request):
        # Consent is recorded through the profile page or the API, which update the summary and
        # propagate withdrawals; an admin add would do neither.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
