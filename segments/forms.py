import json

from django import forms

from segments.models import Segment


class DefinitionField(forms.CharField):
    """A JSON definition typed in a textarea: a message for text that is not JSON."""

    widget = forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"})

    def to_python(self, value):
        text = super().to_python(value)
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"Not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})."
            ) from error
        if not isinstance(definition, dict):
            raise forms.ValidationError('A definition is one JSON object, e.g. {"all": [...]}.')
        return definition

    def prepare_value(self, value):
        return json.dumps(value, indent=2, sort_keys=True) if isinstance(value, dict) else value


# Paths under /segments/ that are pages, not segments.
RESERVED_SLUGS = {"new", "builder"}


class SegmentForm(forms.Form):
    slug = forms.SlugField(max_length=100, help_text="Used in files and the API; cannot change later.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    is_suppression = forms.BooleanField(required=False, label="Suppression list (syncs and triggers exclude it)")
    holdout_percent = forms.IntegerField(min_value=0, max_value=90, initial=0, label="Holdout %")
    definition = DefinitionField()
    note = forms.CharField(max_length=500, help_text="Why this version: kept in the history.")

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"'{slug}' is the name of a page; choose another slug.")
        if Segment.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A segment with this slug exists; open it to add a version.")
        return slug


class VersionForm(forms.Form):
    definition = DefinitionField()
    note = forms.CharField(max_length=500, help_text="Why this version: kept in the history.")
