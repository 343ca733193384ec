"""Destinations, syncs (reverse ETL), triggers, and the records that make every send reconcilable.

A sync's durable state is `SyncState`: per person, what the destination last accepted (a
fingerprint of the mapped values). A run snapshots the audience into `SyncSnapshot`, diffs the two
in SQL, and writes one `SyncRecord` per intended operation; records are the work queue, so a run
killed half-way resumes from them without sending anything twice.
"""

import json

from django.conf import settings as django_settings
from django.db import models

from activations import domain
from consent.domain import PURPOSES
from consent.fields import EncryptedTextField


class Destination(models.Model):
    WEBHOOK, BRAZE, SALESFORCE, HUBSPOT, TWILIO, META, CSV = (
        "webhook",
        "braze",
        "salesforce",
        "hubspot",
        "twilio",
        "meta_audience",
        "csv_export",
    )
    KINDS = (
        (WEBHOOK, "Webhook (Standard Webhooks signed JSON)"),
        (BRAZE, "Braze"),
        (SALESFORCE, "Salesforce"),
        (HUBSPOT, "HubSpot"),
        (TWILIO, "Twilio SMS"),
        (META, "Meta custom audience"),
        (CSV, "CSV file export"),
    )

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=KINDS)
    base_url = models.URLField(blank=True, help_text="Empty: the vendor's public API address.")
    settings = models.JSONField(default=dict, blank=True, help_text="Non-secret connection settings.")
    secrets = EncryptedTextField(blank=True, help_text="JSON object of secrets, encrypted at rest.")
    fields = models.JSONField(default=list, help_text="The field contract: [{name, source, pii}].")
    idempotency_key = models.CharField(max_length=100, help_text="The contract field the destination upserts on.")
    operations = models.JSONField(default=list, help_text="Operations the contract allows.")
    consent_purpose = models.CharField(max_length=32, choices=PURPOSES, blank=True)
    pii_mode = models.CharField(max_length=16, choices=domain.PII_MODES, default=domain.HASHED)
    rate_limit_per_second = models.FloatField(default=10.0, help_text="Requests per second, across all senders.")
    batch_size = models.PositiveIntegerField(default=50, help_text="Records per request (capped by the connector).")
    max_attempts = models.PositiveSmallIntegerField(default=5)
    timeout_seconds = models.FloatField(default=10.0)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_until = models.DateTimeField(null=True, blank=True, help_text="Set from 429 Retry-After; senders wait.")
    next_send_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The next free send slot (database clock), for every sender."
    )
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    secrets_rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def secret_values(self) -> dict:
        return json.loads(self.secrets) if self.secrets else {}

    @property
    def contract(self) -> list[domain.ContractField]:
        return domain.parse_contract(self.fields)

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secret_values)


class Sync(models.Model):
    """A published segment kept in step with a destination."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    segment = models.ForeignKey("segments.Segment", on_delete=models.PROTECT, related_name="syncs")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="syncs")
    mode = models.CharField(max_length=16, choices=domain.MODES, default=domain.MODE_UPSERT)
    fields = models.JSONField(default=list, blank=True, help_text="Contract fields to send; empty: all of them.")
    schedule_minutes = models.PositiveIntegerField(default=0, help_text="Run every N minutes; 0: on demand only.")
    is_active = models.BooleanField(default=True)
    min_merge_confidence = models.FloatField(default=0.8)
    guard_sources_fresh = models.BooleanField(
        default=False, help_text="Pause when a source that feeds profiles is outside its freshness SLA."
    )
    guard_max_low_confidence_share = models.FloatField(
        null=True,
        blank=True,
        help_text="Pause when more than this share (0-1) of members is under the confidence threshold.",
    )
    guard_max_reconciliation_delta = models.FloatField(
        null=True, blank=True, help_text="Pause when the last run's unapplied share (0-1) was above this."
    )
    owner = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class SyncRun(models.Model):
    PENDING, RUNNING, PAUSED, COMPLETED, FAILED = "pending", "running", "paused", "completed", "failed"
    STATUSES = (
        (PENDING, "Pending"),
        (RUNNING, "Running"),
        (PAUSED, "Paused by a guard"),
        (COMPLETED, "Completed"),
        (FAILED, "Failed"),
    )

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    segment_version = models.ForeignKey(
        "segments.SegmentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    SNAPSHOT, PREPARE, SEND, DONE = "snapshot", "prepare", "send", "done"
    PHASES = ((SNAPSHOT, "Snapshot and diff"), (PREPARE, "Build payloads"), (SEND, "Send"), (DONE, "Done"))

    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    phase = models.CharField(max_length=16, choices=PHASES, default=SNAPSHOT, help_text="Where a resumed run picks up.")
    is_dry_run = models.BooleanField(default=False)
    ignore_guards = models.BooleanField(default=False)
    triggered_by = models.CharField(max_length=150, help_text="schedule, command, or user:<name>.")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="A running run not heard of for long is resumed."
    )
    members = models.PositiveIntegerField(default=0)
    planned = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skipped_reasons = models.JSONField(default=dict, blank=True, help_text="Members not sent, per reason.")
    operations = models.JSONField(default=dict, blank=True, help_text="Planned operations per kind.")
    pause_reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    snapshot_seconds = models.FloatField(null=True, blank=True)
    diff_seconds = models.FloatField(null=True, blank=True)
    send_seconds = models.FloatField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"]), models.Index(fields=["sync", "-created_at"])]

    def __str__(self):
        return f"{self.sync} run {self.pk}"

    @property
    def unapplied(self) -> int:
        return max(self.planned - self.applied, 0)

    @property
    def reconciliation_delta(self) -> float:
        """Share of planned operations the destination has not accepted."""
        return self.unapplied / self.planned if self.planned else 0.0


class SyncRecord(models.Model):
    """One intended operation for one person, with the destination's answer."""

    PENDING, SENDING, APPLIED, FAILED, SKIPPED, DRY_RUN = (
        "pending",
        "sending",
        "applied",
        "failed",
        "skipped",
        "dry_run",
    )
    STATUSES = (
        (PENDING, "Pending"),
        (SENDING, "Sending"),
        (APPLIED, "Applied"),
        (FAILED, "Failed"),
        (SKIPPED, "Skipped"),
        (DRY_RUN, "Dry run (not sent)"),
    )

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="records")
    profile_id = models.BigIntegerField(db_index=True, help_text="Not a foreign key: the record outlives a purge.")
    operation = models.CharField(max_length=16, choices=domain.OPERATIONS)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    skip_reason = models.CharField(max_length=32, choices=domain.SKIP_REASONS, blank=True)
    key_hash = models.CharField(max_length=64, blank=True, help_text="Fingerprint of the idempotency key's value.")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="Fingerprint of the mapped values.")
    key = EncryptedTextField(blank=True, help_text="The idempotency key's value as sent.")
    payload = EncryptedTextField(blank=True, help_text="JSON of the fields as sent (hashed where the contract says).")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, help_text="The destination's answer for this record (truncated).")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "status", "next_attempt_at"])]

    def __str__(self):
        return f"{self.operation} profile {self.profile_id} ({self.status})"

    @property
    def payload_values(self) -> dict:
        return json.loads(self.payload) if self.payload else {}


class SyncState(models.Model):
    """What the destination last accepted for one person of one sync (or why they are held back)."""

    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="states")
    profile_id = models.BigIntegerField()
    key_hash = models.CharField(max_length=64, blank=True)
    key = EncryptedTextField(blank=True, help_text="Needed to remove the person later, even after a purge.")
    fingerprint = models.CharField(max_length=64, blank=True, help_text="Empty: the destination does not hold them.")
    skip_reason = models.CharField(max_length=32, blank=True, help_text="Last reason they were held back.")
    accepted_at = models.DateTimeField(null=True, blank=True)
    record_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sync", "profile_id"], name="sync_state_unique_profile")]
        # Withdrawals and deletions look a person up across every sync.
        indexes = [models.Index(fields=["profile_id"], name="sync_state_profile")]


class SyncSnapshot(models.Model):
    """The audience of one run as the diff sees it; kept for the latest run only."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+")
    profile_id = models.BigIntegerField()
    key_hash = models.CharField(max_length=64, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    skip_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "profile_id"])]


class Trigger(models.Model):
    """A real-time send on segment entry or exit, or on an event."""

    SEGMENT_ENTRY, SEGMENT_EXIT, EVENT = "segment_entry", "segment_exit", "event"
    KINDS = ((SEGMENT_ENTRY, "Person enters a segment"), (SEGMENT_EXIT, "Person leaves a segment"), (EVENT, "An event"))

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=KINDS)
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="triggers")
    segment = models.ForeignKey(
        "segments.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="triggers"
    )
    event_type = models.CharField(max_length=64, blank=True)
    where = models.JSONField(default=list, blank=True, help_text='Property filters: [{"property", "op", "value"}].')
    template = models.JSONField(
        default=dict, help_text='Message fields; "{field}" is replaced by the contract field\'s value.'
    )
    cap_count = models.PositiveIntegerField(default=1, help_text="At most this many sends per person and channel...")
    cap_window_hours = models.PositiveIntegerField(default=24, help_text="...in this many hours (0: no cap).")
    quiet_start_hour = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Local hour, 0-23.")
    quiet_end_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    default_timezone = models.CharField(max_length=64, default="UTC", help_text="When the profile's is unknown.")
    holdout_percent = models.PositiveSmallIntegerField(
        default=0, help_text="Event triggers: share of people never sent to (segment triggers use the segment's)."
    )
    min_merge_confidence = models.FloatField(default=0.8)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class TriggerSend(models.Model):
    PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
    STATUSES = ((PENDING, "Pending"), (SENDING, "Sending"), (SENT, "Sent"), (FAILED, "Failed"), (SKIPPED, "Skipped"))

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="sends")
    profile_id = models.BigIntegerField()
    channel = models.CharField(max_length=32)
    idempotency_key = models.CharField(max_length=200, help_text="One entry, exit or event sends at most once.")
    membership_id = models.BigIntegerField(null=True, blank=True, help_text="The segment entry or exit that fired it.")
    event_id = models.BigIntegerField(null=True, blank=True, help_text="The event that fired it.")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    skip_reason = models.CharField(max_length=32, choices=domain.TRIGGER_SKIP_REASONS, blank=True)
    payload = EncryptedTextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    source_received_at = models.DateTimeField(null=True, blank=True, help_text="When the causing event arrived.")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When the destination accepted the request.")
    latency_ms = models.FloatField(null=True, blank=True, help_text="Source event arrival to destination answer.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "idempotency_key"], name="trigger_send_unique_key"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["profile_id", "channel", "sent_at"]),
            models.Index(fields=["trigger", "membership_id"]),
            models.Index(fields=["trigger", "event_id"]),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.trigger} → profile {self.profile_id} ({self.status})"


from activations.suppression_models import *  # noqa: E402, F403
