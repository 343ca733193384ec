"""Forms for destinations, syncs and triggers. Saving goes through the services, which validate
contracts; their errors come back onto the fields they are about."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from activations import domain, lift
from activations.connectors import connector_classes
from activations.destinations import connector_defaults
from activations.models import Destination, Sync, Trigger
from activations.selectors import sync_config_errors
from cdp_site.form_errors import add_errors_to_form
from profiles.models import EventContract
from segments.models import Segment

RESERVED_SLUGS = {"new"}
OPERATION_CHOICES = (*domain.OPERATIONS, (domain.MESSAGE, "Message (triggers)"))
DEFAULT_CONTRACT = [{"name": "email", "source": "identifier:email"}]


class JSONTextField(forms.CharField):
    """JSON typed in a textarea, of one expected type (object or list)."""

    def __init__(self, *, expect: type = dict, **kwargs):
        self.expect = expect
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code"}))
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if not text.strip():
            return self.expect()
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"Not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
            ) from error
        if not isinstance(parsed, self.expect):
            raise forms.ValidationError("A JSON object, e.g. {...}." if self.expect is dict else "A JSON list, [...].")
        return parsed

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value: secrets are typed in, never shown back (not even after an error)."""

    def format_value(self, value):
        return None


class SecretsField(forms.CharField):
    """A JSON object of secrets, or one `name=value` per line. Blank (or a blank value) keeps the
    stored secret."""

    widget = WriteOnlyTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off", "class": "code"})

    def to_python(self, value) -> dict:
        text = (super().to_python(value) or "").strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                raise forms.ValidationError(f"Not a valid JSON object ({error.msg}).") from error
            if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
                raise forms.ValidationError("A JSON object of text values.")
            return {str(name): value for name, value in parsed.items()}
        secrets = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, equals, secret = line.partition("=")
            if not equals or not name.strip():
                # Never echo the line: it may hold a secret.
                raise forms.ValidationError(f"Line {number} is not name=value.")
            secrets[name.strip()] = secret.strip()
        return secrets


def _reserved(slug: str) -> str:
    if slug in RESERVED_SLUGS:
        raise forms.ValidationError(f"'{slug}' is the name of a page; choose another slug.")
    return slug


# -- destinations -----------------------------------------------------------------------------------


def limit_owner_choices(form) -> None:
    """Owners are active accounts; empty on a new object means whoever creates it."""
    field = form.fields["owner"]
    field.queryset = get_user_model().objects.filter(is_active=True).order_by("username")
    field.required = False
    field.help_text = "Who answers for it (the pilot gates need one). Empty when creating: you."


class DestinationForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False, assume_scheme="https", label="Base URL", help_text="Empty: the vendor's public API address."
    )
    settings = JSONTextField(expect=dict, required=False, help_text="Non-secret settings, a JSON object.")
    secrets = SecretsField(
        required=False,
        help_text="Write-only: a JSON object or one name=value per line. Blank keeps the stored secrets; "
        "a name with an empty value keeps that one.",
    )
    fields = JSONTextField(
        expect=list,
        help_text='The field contract: [{"name": ..., "source": "trait:…|identifier:…|computed:…|profile:…", '
        '"pii": true|false}].',
    )
    operations = forms.MultipleChoiceField(choices=OPERATION_CHOICES, widget=forms.CheckboxSelectMultiple)
    max_attempts = forms.IntegerField(min_value=1, max_value=100, initial=5)
    batch_size = forms.IntegerField(min_value=1, help_text="Records per request (capped by the connector).")

    class Meta:
        model = Destination
        fields = [
            "kind",
            "name",
            "slug",
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
            "owner",
            "is_active",
        ]

        labels = {"pii_mode": "PII mode", "is_active": "Active"}

    # `secrets` is not a model field here: the service merges and encrypts it.
    field_order = ["kind", "name", "slug", "base_url", "settings", "secrets", "fields"]

    def __init__(self, *args, kind: str | None = None, **kwargs):
        instance = kwargs.get("instance")
        if instance is None and kind in connector_classes():
            defaults = connector_defaults(kind)
            kwargs["initial"] = {
                "kind": kind,
                "settings": {},
                "fields": DEFAULT_CONTRACT,
                "idempotency_key": "email",
                **defaults,
                **(kwargs.get("initial") or {}),
            }
        super().__init__(*args, **kwargs)
        limit_owner_choices(self)
        if instance is not None and instance.pk:
            # The slug names it in URLs and the API; the kind decides what its contract can hold.
            for name in ("slug", "kind"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Cannot change once created."

    def clean_slug(self):
        return _reserved(self.cleaned_data["slug"])

    def service_values(self) -> tuple[dict, dict]:
        """(values for destination_save, secrets)."""
        values = {name: value for name, value in self.cleaned_data.items() if name != "secrets"}
        if self.instance.pk:
            values.pop("slug", None)
            values.pop("kind", None)
        return values, self.cleaned_data.get("secrets") or {}

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        add_errors_to_form(self, errors, self._field_for)

    def _field_for(self, field: str, message: str) -> str | None:
        if field == "fields":
            if "idempotency key" in message:
                return "idempotency_key"
            if message.startswith(("operations ", "this connector cannot")):
                return "operations"
            if "consent purpose" in message:
                return "consent_purpose"
        return field if field in self.fields else None


def connector_hints() -> list[dict]:
    """What each kind needs, shown beside the destination form."""
    hints = []
    for kind, label in Destination.KINDS:
        cls = connector_classes().get(kind)
        if cls is None:
            continue
        hints.append(
            {
                "kind": kind,
                "label": label,
                "settings": list(cls.required_settings),
                "secrets": list(cls.required_secrets),
                "operations": sorted(cls.operations),
                "pii_modes": sorted(cls.pii_modes),
                "message_fields": list(cls.message_fields),
            }
        )
    return hints


# -- syncs ------------------------------------------------------------------------------------------


def _contract_names(destination: Destination | None) -> list[str]:
    destinations = [destination] if destination is not None else Destination.objects.order_by("name")
    names: list[str] = []
    for each in destinations:
        try:
            contract = each.contract
        except domain.ContractViolation:
            continue
        names += [field.name for field in contract if field.name not in names]
    return names


class SyncForm(forms.ModelForm):
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.none(), to_field_name="slug", help_text="Published segments only."
    )
    destination = forms.ModelChoiceField(queryset=Destination.objects.order_by("name"), to_field_name="slug")
    fields = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Contract fields to send; none ticked sends all of them. The idempotency key is always sent.",
    )

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
            "min_merge_confidence",
            "guard_sources_fresh",
            "guard_max_low_confidence_share",
            "guard_max_reconciliation_delta",
            "owner",
            "is_active",
        ]
        labels = {
            "schedule_minutes": "Run every (minutes)",
            "guard_sources_fresh": "Guard: pause when a source is stale",
            "guard_max_low_confidence_share": "Guard: most low-confidence share (0-1)",
            "guard_max_reconciliation_delta": "Guard: most unapplied share of the last run (0-1)",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit_owner_choices(self)
        segments = Segment.objects.filter(published_version__isnull=False)
        if self.instance.pk:
            segments = segments | Segment.objects.filter(pk=self.instance.segment_id)
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = "Cannot change once created."
        self.fields["segment"].queryset = segments.order_by("name")
        self.fields["fields"].choices = [(name, name) for name in _contract_names(self._chosen_destination())]

    def _chosen_destination(self) -> Destination | None:
        slug = None
        if self.is_bound:
            slug = self.data.get(self.add_prefix("destination"))
        else:
            chosen = self.initial.get("destination")
            slug = chosen.slug if isinstance(chosen, Destination) else chosen
            if not slug and self.instance.pk:
                return self.instance.destination
        if isinstance(slug, int) or (isinstance(slug, str) and slug.isdigit()):
            return Destination.objects.filter(pk=slug).first() or Destination.objects.filter(slug=slug).first()
        return Destination.objects.filter(slug=slug).first() if slug else None

    def clean_slug(self):
        return _reserved(self.cleaned_data["slug"])

    def clean(self):
        cleaned = super().clean()
        for name in ("min_merge_confidence", "guard_max_low_confidence_share", "guard_max_reconciliation_delta"):
            value = cleaned.get(name)
            if value is not None and not 0 <= value <= 1:
                self.add_error(name, "A share from 0 to 1.")
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        add_errors_to_form(self, sync_config_errors(self.instance))


# -- triggers ---------------------------------------------------------------------------------------


class TriggerForm(forms.ModelForm):
    destination = forms.ModelChoiceField(queryset=Destination.objects.order_by("name"), to_field_name="slug")
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.none(),
        to_field_name="slug",
        required=False,
        help_text="Segment entry and exit triggers: a published segment.",
    )
    where = JSONTextField(
        expect=list,
        required=False,
        help_text='Event triggers: property filters, [{"property": "total", "op": "gte", "value": 100}].',
    )
    template = JSONTextField(
        expect=dict, help_text='Message fields; "{field}" is replaced by the contract field\'s value.'
    )

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
            "owner",
            "is_active",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit_owner_choices(self)
        segments = Segment.objects.filter(published_version__isnull=False)
        if self.instance.pk:
            if self.instance.segment_id:
                segments = segments | Segment.objects.filter(pk=self.instance.segment_id)
            self.fields["slug"].disabled = True
            self.fields["slug"].help_text = "Cannot change once created."
        self.fields["segment"].queryset = segments.order_by("name")

    def clean_slug(self):
        return _reserved(self.cleaned_data["slug"])

    def clean_min_merge_confidence(self):
        value = self.cleaned_data["min_merge_confidence"]
        if not 0 <= value <= 1:
            raise forms.ValidationError("A share from 0 to 1.")
        return value

    def service_values(self) -> dict:
        values = dict(self.cleaned_data)
        if self.instance.pk:
            values.pop("slug", None)
        return values

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        add_errors_to_form(self, errors)


class LiftForm(forms.Form):
    """The measurement asked for on the lift page and API (GET parameters); dates are local days,
    `until` included."""

    event_type = forms.ChoiceField(help_text="The conversion event.")
    window_days = forms.IntegerField(
        min_value=1, max_value=lift.MAX_WINDOW_DAYS, required=False, initial=7, help_text="Attribution window."
    )
    since = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="First day of entries or sends (empty: all).",
    )
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Last day of entries or sends, included (empty: no end).",
    )
    where = JSONTextField(
        expect=list,
        required=False,
        widget=forms.TextInput(attrs={"class": "code", "spellcheck": "false"}),
        help_text='Optional property filters, e.g. [{"property": "total", "op": "gte", "value": 50}].',
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        types = EventContract.objects.order_by("event_type").values_list("event_type", flat=True)
        self.fields["event_type"].choices = [(name, name) for name in types]

    def clean_where(self):
        try:
            return lift._checked_where(self.cleaned_data["where"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "Must not be before since.")
        return data

    def measure_kwargs(self) -> dict:
        """Keyword arguments for lift_for_sync / lift_for_trigger."""
        data = self.cleaned_data

        def start_of(day):
            return timezone.make_aware(datetime.combine(day, time.min))

        return {
            "event_type": data["event_type"],
            "where": data["where"] or None,
            "window_days": data["window_days"] or 7,
            "since": start_of(data["since"]) if data["since"] else None,
            "until": start_of(data["until"] + timedelta(days=1)) if data["until"] else None,
        }
