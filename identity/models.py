from django.db import models
from django.db.models import Q

from consent import vault
from identity import domain


class IdentifierType(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=domain.ROLES, default=domain.CANONICAL)
    normaliser = models.CharField(max_length=16, choices=domain.NORMALISERS, default=domain.EXACT)
    limit_per_profile = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most identifiers of this type one profile may hold; empty for no limit."
    )
    priority = models.PositiveSmallIntegerField(
        default=50, help_text="Higher wins when choosing which identifier an event is attributed to."
    )
    is_pii = models.BooleanField(default=False, help_text="Values are encrypted at rest.")

    class Meta:
        ordering = ["-priority", "slug"]

    def __str__(self):
        return self.slug

    def as_rule(self) -> domain.IdentifierRule:
        return domain.IdentifierRule(
            id=self.pk,
            slug=self.slug,
            role=self.role,
            normaliser=self.normaliser,
            limit_per_profile=self.limit_per_profile,
            priority=self.priority,
            is_pii=self.is_pii,
        )


class BlockedValue(models.Model):
    """A junk value (test@test.com, null, 0000000000) that never links anything."""

    identifier_type = models.ForeignKey(
        IdentifierType, null=True, blank=True, on_delete=models.CASCADE, help_text="Empty: blocked for every type."
    )
    value = models.CharField(max_length=255, help_text="Compared after normalisation, case-insensitively.")
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["identifier_type", "value"], name="blocked_value_unique")]

    def __str__(self):
        return self.value


class Identifier(models.Model):
    identifier_type = models.ForeignKey(IdentifierType, on_delete=models.PROTECT, related_name="identifiers")
    # Non-PII values in the clear; PII values only as a Fernet token in encrypted_value.
    value = models.CharField(max_length=255, blank=True)
    encrypted_value = models.TextField(blank=True)
    lookup_hash = models.CharField(max_length=64, help_text="Keyed blind index of the normalised value.")
    profile = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="identifiers")
    source = models.ForeignKey("profiles.Source", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_verified = models.BooleanField(default=False)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Led by the blind index: resolution looks identifiers up by hash.
            models.UniqueConstraint(fields=["lookup_hash", "identifier_type"], name="identifier_unique_value")
        ]
        indexes = [models.Index(fields=["profile", "identifier_type"])]

    def __str__(self):
        return f"{self.identifier_type.slug}:{self.display_value}"

    @property
    def display_value(self) -> str:
        return vault.decrypt(self.encrypted_value) if self.encrypted_value else self.value

    @staticmethod
    def stored_values(rule: domain.IdentifierRule, normalised: str, *, lookup_hash: str | None = None) -> dict:
        """Column values for a normalised identifier: cleartext or ciphertext, and its blind index
        (pass `lookup_hash` when it is already known)."""
        return {
            "value": "" if rule.is_pii else normalised,
            "encrypted_value": vault.encrypt(normalised) if rule.is_pii else "",
            "lookup_hash": lookup_hash or vault.blind_index(rule.slug, normalised),
        }


class IdentityLink(models.Model):
    DETERMINISTIC, PROBABILISTIC, MANUAL = "deterministic", "probabilistic", "manual"
    KINDS = ((DETERMINISTIC, "Deterministic"), (PROBABILISTIC, "Probabilistic"), (MANUAL, "Manual"))
    ACTIVE, PENDING_REVIEW, REJECTED, BLOCKED = "active", "pending_review", "rejected", "blocked"
    STATUSES = (
        (ACTIVE, "Active"),
        (PENDING_REVIEW, "Pending review"),
        (REJECTED, "Rejected"),
        (BLOCKED, "Blocked by a limit"),
    )

    # Always stored with from_identifier_id < to_identifier_id, so a pair has one row.
    from_identifier = models.ForeignKey(Identifier, on_delete=models.CASCADE, related_name="links_out")
    to_identifier = models.ForeignKey(Identifier, on_delete=models.CASCADE, related_name="links_in")
    kind = models.CharField(max_length=16, choices=KINDS, default=DETERMINISTIC)
    status = models.CharField(max_length=16, choices=STATUSES, default=ACTIVE)
    confidence = models.FloatField(default=1.0)
    rule = models.CharField(max_length=100, help_text="The rule that produced the link.")
    evidence = models.JSONField(default=dict, help_text="The event or comparison that produced the link.")
    reason = models.CharField(max_length=300, blank=True, help_text="Why a link is blocked or rejected.")
    created_at = models.DateTimeField()
    # The last review decision (approve, reject) or unmerge that changed the status.
    # db_default: the resolver inserts links with plain SQL that names only the columns it sets.
    reviewed_by = models.CharField(max_length=150, blank=True, db_default="")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(max_length=500, blank=True, db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["from_identifier", "to_identifier"], name="identity_link_unique_pair"),
            models.CheckConstraint(
                condition=Q(from_identifier__lt=models.F("to_identifier")), name="identity_link_ordered"
            ),
        ]
        indexes = [
            models.Index(fields=["to_identifier"]),
            models.Index(fields=["status", "created_at"]),
            # Rejected links are few: resolution reads them for every batch, so they get their own.
            models.Index(
                fields=["from_identifier", "to_identifier"],
                condition=Q(status="rejected"),
                name="identity_link_rejected",
            ),
        ]


class Merge(models.Model):
    """Audit row: one profile absorbed into another, with what moved so an unmerge can restore it."""

    survivor = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="merges_received")
    absorbed = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="merges_absorbed")
    link = models.ForeignKey(IdentityLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="merges")
    rule = models.CharField(max_length=100)
    actor = models.CharField(max_length=150, help_text="User name, or the rule for automatic merges.")
    confidence = models.FloatField(default=1.0)
    evidence = models.JSONField(default=dict)
    moved = models.JSONField(default=dict, help_text="Ids of identifiers, events and trait values moved.")
    survivor_identifiers = models.JSONField(
        default=list, blank=True, help_text="Ids of the survivor's identifiers at merge time: the other side."
    )
    created_at = models.DateTimeField()
    unmerged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["survivor"]), models.Index(fields=["absorbed"])]

    @property
    def is_unmerged(self) -> bool:
        return self.unmerged_at is not None


class Unmerge(models.Model):
    """Audit row: a merge undone. The links cut, the profile restored, and what moved back."""

    merge = models.OneToOneField(Merge, on_delete=models.PROTECT, related_name="unmerge")
    restored = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="unmerges_restored")
    remaining = models.ForeignKey("profiles.Profile", on_delete=models.PROTECT, related_name="unmerges_remaining")
    split_off = models.JSONField(
        default=list, blank=True, help_text="Ids of further profiles created for parts connected to neither side."
    )
    rejected_links = models.JSONField(default=list, help_text="The links cut, with their evidence as it was.")
    actor = models.CharField(max_length=150, help_text="User name, or the rule for automatic unmerges.")
    reason = models.CharField(max_length=500, blank=True)
    moved = models.JSONField(default=dict, help_text="Ids of identifiers, events, trait values moved back.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]


class IdentityMetricSnapshot(models.Model):
    """Match-rate figures at one moment, kept so trends show."""

    captured_at = models.DateTimeField(db_index=True)
    figures = models.JSONField(default=dict)

    class Meta:
        ordering = ["-captured_at"]


class MatchKey(models.Model):
    """A blocking key of a profile for probabilistic matching: profiles sharing a key are compared."""

    profile = models.ForeignKey("profiles.Profile", on_delete=models.CASCADE, related_name="match_keys")
    key = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "profile"], name="match_key_unique")]
        indexes = [models.Index(fields=["profile"])]


class MatchRun(models.Model):
    """One probabilistic matching pass: its fitted model, thresholds and outcome."""

    FULL, INCREMENTAL = "full", "incremental"
    MODES = ((FULL, "All profiles"), (INCREMENTAL, "New and changed profiles"))
    RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
    STATUSES = ((RUNNING, "Running"), (COMPLETED, "Completed"), (FAILED, "Failed"))

    mode = models.CharField(max_length=16, choices=MODES, default=FULL)
    is_dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=STATUSES, default=RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    since = models.DateTimeField(null=True, blank=True, help_text="Incremental: profiles updated after this time.")
    auto_threshold = models.FloatField()
    review_threshold = models.FloatField()
    parameters = models.JSONField(default=dict, help_text="Fitted m and u probabilities per field level, prior.")
    profiles_considered = models.PositiveIntegerField(default=0)
    pairs_compared = models.PositiveBigIntegerField(default=0)
    links_auto = models.PositiveIntegerField(default=0)
    links_review = models.PositiveIntegerField(default=0)
    skipped_rejected = models.PositiveIntegerField(default=0)
    sample = models.JSONField(default=list, blank=True, help_text="Some scored pairs, for a person to check.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
