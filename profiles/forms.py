from django import forms

from profiles.models import Source


class SourceForm(forms.ModelForm):
    signing_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Only for senders that dictate their secret: Shopify's app secret, Mindbody's messageSignatureKey. "
        "Leave empty to generate one.",
    )

    class Meta:
        model = Source
        fields = ["name", "kind", "owner", "priority", "freshness_sla_minutes", "rate_limit_per_second"]


class ProfileSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "email, phone, type:value or a name", "autofocus": True}),
    )
