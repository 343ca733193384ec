"""Forms of the health dashboard's alert rules."""

from django import forms

from cdp_site.operations_models import MAX_CONSECUTIVE, AlertRule
from cdp_site.operations_trends import METRICS


def metric_choices() -> list[tuple[str, str]]:
    choices = []
    for metric in METRICS.values():
        per = f" (per {metric.labelled_by})" if metric.labelled_by else ""
        unit = {"ratio": "ratio 0–1", "seconds": "seconds", "ms": "milliseconds", "flag": "0 or 1"}.get(
            metric.unit, "count"
        )
        choices.append((metric.key, f"{metric.label}{per} · {unit}"))
    return choices


class AlertRuleForm(forms.Form):
    """The secret is typed in, never shown back (not even after an error): blank keeps the stored one."""

    name = forms.CharField(max_length=100)
    metric = forms.ChoiceField(choices=metric_choices)
    label = forms.CharField(
        max_length=100,
        required=False,
        label="Source or destination",
        help_text="Per-source and per-destination metrics only: the slug to watch. Blank watches every one, "
        "each with its own alert.",
    )
    comparison = forms.ChoiceField(choices=AlertRule.COMPARISONS, initial=AlertRule.ABOVE, label="Alert when")
    threshold = forms.FloatField(help_text="Ratios are between 0 and 1 (0.05 is 5%); durations in the metric's unit.")
    consecutive = forms.IntegerField(
        min_value=1,
        max_value=MAX_CONSECUTIVE,
        initial=1,
        label="For consecutive snapshots",
        help_text="Snapshots are taken every 5 minutes: 3 means the condition held for 10–15 minutes.",
    )
    webhook_url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", label="Webhook URL", help_text="Optional."
    )
    webhook_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="Webhook signing secret",
        help_text="Standard Webhooks secret (whsec_…). Write-only: blank keeps the stored secret.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, rule: AlertRule | None = None, **kwargs):
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                name: getattr(rule, name)
                for name in (
                    "name",
                    "metric",
                    "label",
                    "comparison",
                    "threshold",
                    "consecutive",
                    "webhook_url",
                    "is_active",
                )
            }
        super().__init__(*args, **kwargs)
        self.rule = rule
        if rule is not None and rule.webhook_secret:
            self.fields["webhook_secret"].help_text = "A secret is stored (never shown). Blank keeps it."

    def service_values(self) -> tuple[dict, str | None]:
        """(values for alert_rule_save, the new secret or None)."""
        values = {name: value for name, value in self.cleaned_data.items() if name != "webhook_secret"}
        return values, self.cleaned_data.get("webhook_secret") or None
