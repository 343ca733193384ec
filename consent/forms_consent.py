"""The staff page's consent form: what the person said, in which wording, and a note."""

from django import forms

from consent.domain import PURPOSES

GRANTED, WITHDRAWN = "granted", "withdrawn"


class ConsentRecordForm(forms.Form):
    purpose = forms.ChoiceField(choices=PURPOSES)
    decision = forms.ChoiceField(
        choices=((WITHDRAWN, "Withdrawn: stop using it"), (GRANTED, "Granted")),
        widget=forms.RadioSelect,
        label="The person has",
    )
    scope = forms.CharField(
        max_length=200,
        required=False,
        label="Wording or policy version",
        help_text="Required for a grant: the wording the person agreed to (e.g. newsletter-2026-03).",
    )
    note = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="How it was given, e.g. “asked at the front desk”. Kept as evidence.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") == GRANTED and not (cleaned.get("scope") or "").strip():
            self.add_error("scope", "Say which wording the person agreed to: a grant needs it as evidence.")
        return cleaned

    @property
    def is_granted(self) -> bool:
        return self.cleaned_data["decision"] == GRANTED
