from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models


class Segment(models.Model):
    """An audience: a slug plus immutable versions of its definition, one of them published."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_suppression = models.BooleanField(
        default=False, help_text="A suppression list: syncs and triggers exclude its members."
    )
    holdout_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(90)],
        help_text="Share of members kept as a control group that no activation reaches.",
    )
    published_version = models.OneToOneField(
        "SegmentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class SegmentVersion(models.Model):
    """One definition of a segment, never changed once written."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    definition_hash = models.CharField(max_length=64)
    author = models.CharField(max_length=150, help_text="User name, or the command that applied a file.")
    note = models.CharField(max_length=500)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["segment", "-number"]
        constraints = [models.UniqueConstraint(fields=["segment", "number"], name="segment_version_unique_number")]

    def __str__(self):
        return f"{self.segment_id} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Segment versions are immutable: write a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Segment versions are immutable.")


class SegmentMembership(models.Model):
    """A stay of one profile in one segment: entered, and exited once it no longer matches.

    Entries and exits are the signal activations read (rows entered or exited since their last
    run). Holdout members are in the segment but kept from every activation."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    profile = models.ForeignKey("profiles.Profile", on_delete=models.CASCADE, related_name="segment_memberships")
    version = models.ForeignKey(SegmentVersion, on_delete=models.PROTECT, related_name="+")
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_version = models.ForeignKey(SegmentVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    is_holdout = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "profile"], condition=models.Q(exited_at__isnull=True), name="membership_one_open"
            )
        ]
        indexes = [
            models.Index(fields=["segment", "entered_at"]),
            models.Index(fields=["segment", "exited_at"]),
            models.Index(fields=["profile"]),
        ]


class SegmentRefresh(models.Model):
    """One recomputation of a segment's membership: counts kept for the growth chart."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="refreshes")
    version = models.ForeignKey(SegmentVersion, on_delete=models.PROTECT, related_name="+")
    computed_at = models.DateTimeField()
    members = models.PositiveIntegerField()
    entered = models.PositiveIntegerField()
    exited = models.PositiveIntegerField()
    seconds = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["segment", "computed_at"])]


class ComputedTrait(models.Model):
    """A trait computed from a profile's events (count, sum, first/last or most frequent value of a
    property over a window), materialised per profile and usable in segments as `computed`."""

    COUNT, SUM, FIRST, LAST, MOST_FREQUENT = "count", "sum", "first", "last", "most_frequent"
    CHURN_RISK, PREDICTED_VALUE = "churn_risk", "predicted_value"
    KINDS = (
        (COUNT, "Count of events"),
        (SUM, "Sum of a property"),
        (FIRST, "First value of a property"),
        (LAST, "Last value of a property"),
        (MOST_FREQUENT, "Most frequent value of a property"),
        (CHURN_RISK, "Predicted: chance of no activity in the next N days"),
        (PREDICTED_VALUE, "Predicted: revenue in the next N days"),
    )
    PREDICTIVE_KINDS = (CHURN_RISK, PREDICTED_VALUE)

    key = models.SlugField(max_length=100, unique=True, help_text='Used in segments: {"computed": key, ...}.')
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=KINDS)
    event_type = models.CharField(max_length=64, blank=True, help_text="Empty for predictive kinds (all events).")
    property = models.CharField(max_length=200, blank=True, help_text="The event property (all kinds but count).")
    where = models.JSONField(default=list, blank=True, help_text="Property filters, as in a segment's event condition.")
    within_last_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: all time. Predictive kinds: the horizon N (default 90)."
    )
    last_computed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key


class ComputedTraitValue(models.Model):
    """The materialised value of a computed trait for one profile."""

    trait = models.ForeignKey(ComputedTrait, on_delete=models.CASCADE, related_name="values")
    profile = models.ForeignKey("profiles.Profile", on_delete=models.CASCADE, related_name="computed_trait_values")
    value = models.JSONField(null=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trait", "profile"], name="computed_value_unique")]
        indexes = [models.Index(fields=["profile"])]


class PredictiveFit(models.Model):
    """One fit of a predictive trait on the tenant's own history, with its quality on held-out data."""

    trait = models.ForeignKey(ComputedTrait, on_delete=models.CASCADE, related_name="fits")
    fitted_at = models.DateTimeField()
    as_of = models.DateTimeField(help_text="The cut-off: features before it, outcomes in the horizon after it.")
    horizon_days = models.PositiveIntegerField()
    model = models.JSONField(help_text="Coefficients, standardisation and metrics.")
    sample_size = models.PositiveIntegerField()

    class Meta:
        ordering = ["-fitted_at"]
