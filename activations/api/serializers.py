from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from activations import domain
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger, TriggerSend
from activations.selectors import labelled_counts, sync_config_errors
from activations.syncs import sync_problems
from cdp_site import pii
from segments.models import Segment


class DestinationSerializer(serializers.ModelSerializer):
    """`secrets` is write-only and merged into the stored ones (an empty value keeps a stored
    secret); responses name the secrets, never their values."""

    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text="Secret name -> value. Write-only; never returned.",
    )
    secret_names = serializers.ListField(child=serializers.CharField(), read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    operations = serializers.ListField(child=serializers.ChoiceField(choices=[*domain.OPERATION_SLUGS, "message"]))
    fields = serializers.JSONField(help_text='The field contract: [{"name", "source", "pii"}].')
    settings = serializers.JSONField(required=False, help_text="Non-secret connection settings (an object).")

    class Meta:
        model = Destination
        fields = [
            "slug",
            "name",
            "kind",
            "base_url",
            "settings",
            "secrets",
            "secret_names",
            "secrets_rotated_at",
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
            "last_tested_at",
            "last_test_ok",
            "last_test_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "secrets_rotated_at",
            "last_tested_at",
            "last_test_ok",
            "last_test_message",
            "created_at",
            "updated_at",
        ]

    def validate_slug(self, value):
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug cannot change once created.")
        if value == "new":
            raise serializers.ValidationError("'new' is the name of a page; choose another slug.")
        return value

    def validate_kind(self, value):
        if self.instance is not None and value != self.instance.kind:
            raise serializers.ValidationError("The kind cannot change once created.")
        return value


class DestinationTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()


class SyncRunSerializer(serializers.ModelSerializer):
    sync = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    destination = serializers.SlugRelatedField(source="sync.destination", slug_field="slug", read_only=True)
    segment_version = serializers.SlugRelatedField(slug_field="number", read_only=True)
    unapplied = serializers.SerializerMethodField(help_text="Planned minus applied; null for dry runs.")
    reconciliation_delta = serializers.SerializerMethodField(
        help_text="Share (0-1) of planned operations the destination has not accepted; null for dry runs."
    )
    skipped_by_reason = serializers.SerializerMethodField(help_text="Skipped members per reason, with labels.")

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "sync",
            "destination",
            "segment_version",
            "status",
            "phase",
            "is_dry_run",
            "ignore_guards",
            "triggered_by",
            "created_at",
            "started_at",
            "finished_at",
            "members",
            "planned",
            "operations",
            "applied",
            "failed",
            "skipped",
            "skipped_reasons",
            "skipped_by_reason",
            "unapplied",
            "reconciliation_delta",
            "pause_reason",
            "error",
            "snapshot_seconds",
            "diff_seconds",
            "send_seconds",
            "requests",
        ]
        read_only_fields = fields

    def get_unapplied(self, run) -> int | None:
        return None if run.is_dry_run else run.unapplied

    def get_reconciliation_delta(self, run) -> float | None:
        return None if run.is_dry_run else run.reconciliation_delta

    def get_skipped_by_reason(self, run) -> list[dict]:
        return labelled_counts(run.skipped_reasons, dict(domain.SKIP_REASONS))


class SyncSerializer(serializers.ModelSerializer):
    segment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Segment.objects.filter(published_version__isnull=False)
    )
    destination = serializers.SlugRelatedField(slug_field="slug", queryset=Destination.objects.all())
    fields = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Contract fields to send; empty: all of them."
    )
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    problems = serializers.SerializerMethodField(help_text="What stops the sync from running now.")
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Sync
        fields = [
            "slug",
            "name",
            "segment",
            "destination",
            "mode",
            "fields",
            "schedule_minutes",
            "min_merge_confidence",
            "guard_sources_fresh",
            "guard_max_low_confidence_share",
            "guard_max_reconciliation_delta",
            "is_active",
            "owner",
            "last_run_at",
            "problems",
            "last_run",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["last_run_at", "created_at", "updated_at"]

    def get_problems(self, sync) -> list[str]:
        return sync_problems(sync)

    @extend_schema_field(SyncRunSerializer(allow_null=True))
    def get_last_run(self, sync):
        run = sync.runs.filter(is_dry_run=False).order_by("-created_at", "-id").first()
        return SyncRunSerializer(run).data if run else None

    def validate_slug(self, value):
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug cannot change once created.")
        if value == "new":
            raise serializers.ValidationError("'new' is the name of a page; choose another slug.")
        return value

    def validate(self, attrs):
        errors = {}
        for name in ("min_merge_confidence", "guard_max_low_confidence_share", "guard_max_reconciliation_delta"):
            value = attrs.get(name)
            if value is not None and not 0 <= value <= 1:
                errors[name] = ["A share from 0 to 1."]
        if errors:
            raise serializers.ValidationError(errors)
        if self.instance is None:
            sync = Sync()
        else:
            # A copy: a refused change must leave the stored sync as it was.
            sync = Sync(**{f.attname: getattr(self.instance, f.attname) for f in Sync._meta.concrete_fields})
        for name, value in attrs.items():
            setattr(sync, name, value)
        problems = sync_config_errors(sync)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class SyncRunRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(required=False, default=False)
    ignore_guards = serializers.BooleanField(required=False, default=False)


class SyncBusySerializer(serializers.Serializer):
    detail = serializers.CharField()
    run = SyncRunSerializer()


class ProblemsSerializer(serializers.Serializer):
    detail = serializers.ListField(child=serializers.CharField())


class SyncRecordSerializer(serializers.ModelSerializer):
    payload = serializers.SerializerMethodField(
        help_text="Dry runs only: the fields that would be sent, personal data masked (reveal the profile to see it)."
    )
    response = serializers.SerializerMethodField(help_text="The destination's answer (truncated), PII masked.")
    error = serializers.SerializerMethodField(help_text="Personal data masked.")

    class Meta:
        model = SyncRecord
        fields = [
            "id",
            "profile_id",
            "operation",
            "status",
            "skip_reason",
            "attempts",
            "status_code",
            "response",
            "error",
            "created_at",
            "sent_at",
            "applied_at",
            "payload",
        ]
        read_only_fields = fields

    def get_payload(self, record) -> dict | None:
        return pii.mask_json(record.payload_values) if record.status == SyncRecord.DRY_RUN else None

    def get_response(self, record) -> str:
        return pii.mask_body(record.response)

    def get_error(self, record) -> str:
        return pii.mask_text(record.error)


class RetryFailedSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    run = SyncRunSerializer()


class ReconciliationDestinationSerializer(serializers.Serializer):
    destination = serializers.CharField(source="destination.slug")
    destination_name = serializers.CharField(source="destination.name")
    runs = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    planned = serializers.IntegerField()
    applied = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    unapplied = serializers.IntegerField()
    delta = serializers.FloatField()


class ReconciliationSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    days = serializers.IntegerField()
    destinations = ReconciliationDestinationSerializer(many=True)
    runs = SyncRunSerializer(many=True)


class TriggerSerializer(serializers.ModelSerializer):
    destination = serializers.SlugRelatedField(slug_field="slug", queryset=Destination.objects.all())
    segment = serializers.SlugRelatedField(
        slug_field="slug", queryset=Segment.objects.all(), required=False, allow_null=True
    )
    where = serializers.JSONField(required=False, help_text='[{"property", "op", "value"}]')
    template = serializers.JSONField(help_text='Message fields; "{field}" is replaced by the contract field\'s value.')
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Trigger
        fields = [
            "slug",
            "name",
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
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_slug(self, value):
        if self.instance is not None and value != self.instance.slug:
            raise serializers.ValidationError("The slug cannot change once created.")
        if value == "new":
            raise serializers.ValidationError("'new' is the name of a page; choose another slug.")
        return value


class LatencySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    max_ms = serializers.FloatField(allow_null=True)


class LiftSerializer(serializers.Serializer):
    event_type = serializers.CharField()
    where = serializers.JSONField()
    window_days = serializers.IntegerField()
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    treatment_n = serializers.IntegerField()
    treatment_conversions = serializers.IntegerField()
    control_n = serializers.IntegerField()
    control_conversions = serializers.IntegerField()
    treatment_rate = serializers.FloatField(allow_null=True)
    control_rate = serializers.FloatField(allow_null=True)
    absolute_lift = serializers.FloatField(allow_null=True)
    absolute_ci_low = serializers.FloatField(allow_null=True)
    absolute_ci_high = serializers.FloatField(allow_null=True)
    relative_lift = serializers.FloatField(allow_null=True)
    relative_ci_low = serializers.FloatField(allow_null=True)
    relative_ci_high = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField()
    explanation = serializers.CharField()
    absolute_method = serializers.CharField()
    relative_method = serializers.CharField()


class TriggerSendSerializer(serializers.ModelSerializer):
    trigger = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = TriggerSend
        fields = [
            "id",
            "trigger",
            "profile_id",
            "channel",
            "status",
            "skip_reason",
            "attempts",
            "created_at",
            "sent_at",
            "latency_ms",
            "status_code",
            "error",
        ]
        read_only_fields = fields
