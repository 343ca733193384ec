"""Admin for activations. Secrets, keys and payloads are never shown here; runs, records and sends are
written by the services only, so they are read-only."""

from django import forms
from django.contrib import admin

from activations.destinations import DestinationInvalid, destination_validate
from activations.models import Destination, Sync, SyncRecord, SyncRun, SyncSnapshot, SyncState, Trigger, TriggerSend
from activations.syncs import SyncBusy, SyncNotReady, sync_run_start
from activations.triggers import TriggerInvalid, trigger_validate
from cdp_site.form_errors import add_errors_to_form


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DestinationAdminForm(forms.ModelForm):
    base_url = forms.URLField(required=False, assume_scheme="https", label="Base URL")

    class Meta:
        model = Destination
        fields = [
            "name",
            "slug",
            "kind",
            "base_url",
            "settings",
            "fields",
            "idempotency_key",
            "operations",
            "consent_purpose",
            "pii_mode",
            "rate_limit_per_second",
            "batch_size",
            "max_attempts",
            "timeout_seconds",
            "is_active",
            "owner",
        ]

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            destination_validate(self.instance)
        except DestinationInvalid as error:
            add_errors_to_form(self, error.errors)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationAdminForm
    exclude = ["secrets"]  # set through the destination pages or the API, encrypted, never shown
    list_display = ["name", "slug", "kind", "is_active", "pii_mode", "rate_limit_per_second", "last_test_ok"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug"]
    readonly_fields = [
        "secret_names",
        "secrets_rotated_at",
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
        "paused_until",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="secrets (names only)")
    def secret_names(self, destination):
        return ", ".join(destination.secret_names) or "–"


class SyncAdminForm(forms.ModelForm):
    class Meta:
        model = Sync
        fields = [
            "name",
            "slug",
            "segment",
            "destination",
            "mode",
            "fields",
            "schedule_minutes",
            "is_active",
            "min_merge_confidence",
            "guard_sources_fresh",
            "guard_max_low_confidence_share",
            "guard_max_reconciliation_delta",
            "owner",
        ]

    def _post_clean(self):
        from activations.selectors import sync_config_errors

        super()._post_clean()
        if self.errors:
            return
        add_errors_to_form(self, sync_config_errors(self.instance))


@admin.register(Sync)
class SyncAdmin(admin.ModelAdmin):
    form = SyncAdminForm
    list_display = ["name", "slug", "segment", "destination", "mode", "schedule_minutes", "is_active", "last_run_at"]
    list_filter = ["mode", "is_active", "destination"]
    search_fields = ["name", "slug"]
    readonly_fields = ["last_run_at", "created_at", "updated_at"]
    actions = ["run_now", "dry_run"]

    def _start(self, request, queryset, dry_run: bool):
        for sync in queryset.select_related("segment", "destination"):
            try:
                run = sync_run_start(sync=sync, triggered_by=f"user:{request.user.get_username()}", dry_run=dry_run)
            except SyncBusy as error:
                self.message_user(request, f"{sync.slug}: run {error.run.pk} is still {error.run.status}.", "warning")
            except SyncNotReady as error:
                self.message_user(request, f"{sync.slug}: cannot run: {error}", "error")
            else:
                self.message_user(request, f"{sync.slug}: {'dry run' if dry_run else 'run'} #{run.pk} started.")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request, queryset):
        self._start(request, queryset, dry_run=False)

    @admin.action(description="Dry run (sends nothing)", permissions=["run"])
    def dry_run(self, request, queryset):
        self._start(request, queryset, dry_run=True)

    def has_run_permission(self, request):
        return request.user.has_perm("activations.add_syncrun")


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "sync",
        "status",
        "phase",
        "is_dry_run",
        "triggered_by",
        "created_at",
        "planned",
        "applied",
        "failed",
        "skipped",
    ]
    list_filter = ["status", "is_dry_run"]
    search_fields = ["sync__slug", "triggered_by"]


@admin.register(SyncRecord)
class SyncRecordAdmin(ReadOnlyAdmin):
    exclude = ["key", "payload"]  # personal data
    list_display = ["id", "run", "profile_id", "operation", "status", "skip_reason", "attempts", "status_code"]
    list_filter = ["status", "operation", "skip_reason"]
    search_fields = ["=profile_id", "=run__id"]


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    exclude = ["key"]
    list_display = ["sync", "profile_id", "skip_reason", "accepted_at"]
    list_filter = ["sync"]
    search_fields = ["=profile_id"]


@admin.register(SyncSnapshot)
class SyncSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["run", "profile_id", "skip_reason"]
    search_fields = ["=profile_id"]


class TriggerAdminForm(forms.ModelForm):
    class Meta:
        model = Trigger
        fields = [
            "name",
            "slug",
            "kind",
            "destination",
            "segment",
            "event_type",
            "where",
            "template",
            "cap_count",
            "cap_window_hours",
            "quiet_start_hour",
            "quiet_end_hour",
            "default_timezone",
            "holdout_percent",
            "min_merge_confidence",
            "is_active",
            "owner",
        ]

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            trigger_validate(self.instance)
        except TriggerInvalid as error:
            add_errors_to_form(self, error.errors)


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    form = TriggerAdminForm
    list_display = ["name", "slug", "kind", "destination", "segment", "event_type", "is_active"]
    list_filter = ["kind", "is_active", "destination"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(TriggerSend)
class TriggerSendAdmin(ReadOnlyAdmin):
    exclude = ["payload"]  # personal data
    list_display = ["id", "trigger", "profile_id", "channel", "status", "skip_reason", "latency_ms", "status_code"]
    list_filter = ["status", "channel", "skip_reason"]
    search_fields = ["=profile_id"]
