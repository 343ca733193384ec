"""The form that issues a REST API token for oneself (the rules, the cap included, are in cdp_site.api_tokens)."""

from django import forms

from cdp_site.api_tokens import EXPIRY_DAYS_OPTIONS, NAME_MAX_LENGTH
from cdp_site.models import API_TOKEN_SCOPES

NEVER = "never"


class ApiTokenIssueForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_LENGTH,
        help_text="Where the token is used, e.g. “Prometheus scraper” or “nightly export”.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {meaning}") for scope, meaning in API_TOKEN_SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one scope."},
        help_text="Scopes only narrow what the token may do; your role still decides what it can reach.",
    )
    expires_in_days = forms.ChoiceField(
        label="Expires in",
        choices=[(str(days), f"{days} days") for days in EXPIRY_DAYS_OPTIONS] + [(NEVER, "Never")],
        initial="90",
    )

    def expiry_days(self) -> int | None:
        """The cleaned expiry: a number of days, or None for a token that never expires."""
        value = self.cleaned_data["expires_in_days"]
        return None if value == NEVER else int(value)
