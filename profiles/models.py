from django.conf import settings
from django.db import models
from django.db.models import Q

from consent.fields import EncryptedTextField


class Source(models.Model):
    TRACKING, STRIPE, SHOPIFY, MINDBODY, STANDARD_WEBHOOK, CSV = (
        "tracking",
        "stripe",
        "shopify",
        "mindbody",
        "standard_webhook",
        "csv",
    )
    KINDS = (
        (TRACKING, "Tracking API (Segment-compatible SDKs)"),
        (STRIPE, "Stripe webhooks"),
        (SHOPIFY, "Shopify webhooks"),
        (MINDBODY, "Mindbody webhooks"),
        (STANDARD_WEBHOOK, "Standard Webhooks"),
        (CSV, "CSV import"),
    )
    WEBHOOK_KINDS = (STRIPE, SHOPIFY, MINDBODY, STANDARD_WEBHOOK)

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=32, choices=KINDS)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=True)
    # Write keys are shown once; only a SHA-256 of the (high-entropy) key is stored.
    write_key_hash = models.CharField(max_length=64, blank=True, db_index=True)
    write_key_prefix = models.CharField(max_length=12, blank=True, help_text="First characters, to recognise a key.")
    # JSON list of active signing secrets, newest first; encrypted at rest.
    signing_secrets = EncryptedTextField(blank=True, default="")
    identifier_types = models.ManyToManyField("identity.IdentifierType", blank=True, related_name="sources")
    priority = models.PositiveSmallIntegerField(
        default=50, help_text="Trait precedence: higher wins over other sources."
    )
    freshness_sla_minutes = models.PositiveIntegerField(default=60)
    rate_limit_per_second = models.PositiveIntegerField(default=50000, help_text="Tracking API messages per second.")
    # Audit scorecard, 1 (low) to 5 (high); filled by the source audit.
    activation_impact = models.PositiveSmallIntegerField(null=True, blank=True)
    matchability = models.PositiveSmallIntegerField(null=True, blank=True)
    ingestion_complexity = models.PositiveSmallIntegerField(null=True, blank=True)
    pii_exposure = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secrets_rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_webhook(self) -> bool:
        return self.kind in self.WEBHOOK_KINDS


class RawEvent(models.Model):
    """The replayable log: every accepted request, stored before the response."""

    PENDING, PROCESSED, QUARANTINED, FAILED, DROPPED = "pending", "processed", "quarantined", "failed", "dropped"
    STATUSES = (
        (PENDING, "Pending"),
        (PROCESSED, "Processed"),
        (QUARANTINED, "Quarantined"),
        (FAILED, "Failed"),
        (DROPPED, "Dropped"),
    )

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="raw_events")
    external_id = models.CharField(max_length=255, help_text="The sender's event id: the deduplication key.")
    topic = models.CharField(
        max_length=100, blank=True, help_text="Sender's event type (Stripe type, Shopify topic...)."
    )
    received_at = models.DateTimeField()
    payload = models.JSONField()
    headers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="raw_event_unique_per_source")]
        indexes = [
            # The queue: pending rows in arrival order (partial, so it stays small).
            models.Index(fields=["id"], condition=Q(status="pending"), name="raw_event_pending"),
            models.Index(fields=["source", "status", "received_at"]),
            models.Index(fields=["source", "received_at"]),
        ]

    def __str__(self):
        return f"{self.source_id}:{self.external_id}"


class Profile(models.Model):
    """A connected component of identifiers over active links, materialised."""

    ACTIVE, MERGED, DELETED = "active", "merged", "deleted"
    STATUSES = ((ACTIVE, "Active"), (MERGED, "Merged into another"), (DELETED, "Deleted"))
    ANONYMOUS, LEAD, CUSTOMER, LAPSED = "anonymous", "lead", "customer", "lapsed"
    LIFECYCLES = ((ANONYMOUS, "Anonymous"), (LEAD, "Lead"), (CUSTOMER, "Customer"), (LAPSED, "Lapsed customer"))

    status = models.CharField(max_length=16, choices=STATUSES, default=ACTIVE)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    traits = models.JSONField(default=dict, blank=True, help_text="Current trait values, for fast segment queries.")
    trait_provenance = models.JSONField(default=dict, blank=True, help_text="Per trait: the observation that won.")
    consent = models.JSONField(default=dict, blank=True, help_text="Per purpose: latest granted/withdrawn.")
    lifecycle = models.CharField(max_length=16, choices=LIFECYCLES, default=ANONYMOUS)
    lifetime_revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    merge_confidence = models.FloatField(default=1.0)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["status", "-last_seen_at"]),
            models.Index(fields=["merged_into"]),
        ]

    def __str__(self):
        return f"Profile {self.pk}"

    @property
    def clear_traits(self) -> dict:
        """Traits with personal values decrypted (consent/sealing.py), cached while `traits` is the same
        object; lists fill the cache in bulk with consent.sealing.profiles_unseal. Only for showing or
        sending: conditions and precedence work on tokens."""
        from consent.sealing import unseal_traits

        cached = self.__dict__.get("_clear_traits")
        if cached is not None and cached[0] is self.traits:
            return cached[1]
        clear = unseal_traits(self.traits or {})
        self.__dict__["_clear_traits"] = (self.traits, clear)
        return clear

    @property
    def display_name(self) -> str:
        traits = self.clear_traits
        name = traits.get("name") or " ".join(
            str(part) for part in (traits.get("first_name"), traits.get("last_name")) if part
        )
        return name or f"Profile {self.pk}"


class Event(models.Model):
    """The timeline: canonical events, attributed to the profile that holds their identifier.

    On PostgreSQL the table is partitioned by month of `occurred_at` (profiles/partitions.py): its
    primary key is (id, occurred_at) in the database, and any unique constraint added here must
    include `occurred_at`."""

    # No single-column indexes on profile and raw_event: the (profile, -occurred_at) index and the
    # unique constraint lead with them, and every index is paid for once per partition.
    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="events", db_index=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    raw_event = models.ForeignKey(RawEvent, on_delete=models.CASCADE, related_name="events", db_index=False)
    sequence = models.PositiveSmallIntegerField(default=0, help_text="Position among the events of one raw event.")
    type = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True, help_text="The sender's own name for the event.")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    identifier = models.ForeignKey(
        "identity.Identifier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            # A raw event maps to the same occurred_at each time, so this still stops duplicates.
            models.UniqueConstraint(fields=["raw_event", "sequence", "occurred_at"], name="event_unique_per_raw_event")
        ]
        indexes = [
            models.Index(fields=["profile", "-occurred_at"]),
            models.Index(fields=["type", "occurred_at"]),
        ]
        ordering = ["-occurred_at", "-id"]


class TraitValue(models.Model):
    """One observation of a trait, with provenance. The profile's current value is chosen by precedence."""

    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="trait_values")
    key = models.CharField(max_length=100)
    value = models.JSONField(null=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    raw_event = models.ForeignKey(RawEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    identifier = models.ForeignKey(
        "identity.Identifier", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    observed_at = models.DateTimeField()
    is_verified = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["profile", "key"])]


class EventContract(models.Model):
    """The schema of one canonical event type. Editable, so a contract fix plus a replay recovers events."""

    event_type = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=300, blank=True)
    # {"property": "string" | "number" | "integer" | "boolean" | "object" | "array" | "datetime"}
    required = models.JSONField(default=dict, blank=True)
    optional = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event_type"]

    def __str__(self):
        return self.event_type


class SchemaDrift(models.Model):
    """Properties a source sends that the event type's contract does not declare."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="schema_drift")
    event_type = models.CharField(max_length=64)
    property_name = models.CharField(max_length=200)
    occurrences = models.PositiveBigIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "event_type", "property_name"], name="schema_drift_unique")
        ]


class CsvImport(models.Model):
    PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
    STATUSES = ((PENDING, "Pending"), (RUNNING, "Running"), (COMPLETED, "Completed"), (FAILED, "Failed"))

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="csv_imports")
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    mapping = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    rows_read = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    @property
    def progress_percent(self) -> int:
        if not self.bytes_total:
            return 100 if self.status == self.COMPLETED else 0
        return min(100, int(self.bytes_read * 100 / self.bytes_total))


from profiles.audit_models import *  # noqa: E402, F403
