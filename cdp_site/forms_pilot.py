"""Forms of the pilot gates page: a sign-off (or its withdrawal) and the agreed thresholds."""

from decimal import Decimal

from django import forms

from cdp_site.pilot_models import MAX_WINDOW_HOURS, PilotSettings, PilotSignoff


class PilotSignoffForm(forms.Form):
    gate = forms.ChoiceField(choices=PilotSignoff.GATES)
    decision = forms.ChoiceField(choices=PilotSignoff.DECISIONS, initial=PilotSignoff.SIGNED)
    document_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        label="Document",
        help_text="Where the procedure is written down.",
    )
    note = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What was reviewed, or why it is withdrawn. Never personal data.",
    )

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("document_url") and not (cleaned.get("note") or "").strip():
            raise forms.ValidationError("Give the document's address or a note: a sign-off needs its evidence.")
        return cleaned


class PilotSettingsForm(forms.Form):
    """Shares are edited as percentages, stored as 0-1."""

    coverage_percent = forms.DecimalField(
        label="Identity coverage threshold (%)", min_value=0, max_value=100, decimal_places=1, max_digits=4
    )
    max_delta_percent = forms.DecimalField(
        label="Maximum reconciliation delta (%)", min_value=0, max_value=100, decimal_places=2, max_digits=5
    )
    window_hours = forms.IntegerField(label="Reconciliation window (hours)", min_value=1, max_value=MAX_WINDOW_HOURS)

    @classmethod
    def for_settings(cls, settings: PilotSettings) -> "PilotSettingsForm":
        return cls(
            initial={
                "coverage_percent": round(Decimal(str(settings.identity_coverage_threshold)) * 100, 1),
                "max_delta_percent": round(Decimal(str(settings.max_reconciliation_delta)) * 100, 2),
                "window_hours": settings.window_hours,
            }
        )

    def values(self) -> dict:
        return {
            "identity_coverage_threshold": float(self.cleaned_data["coverage_percent"]) / 100,
            "max_reconciliation_delta": float(self.cleaned_data["max_delta_percent"]) / 100,
            "window_hours": self.cleaned_data["window_hours"],
        }
