"""The simulation form: two or more CSV exports with their column mappings, and draft rules."""

from __future__ import annotations

import io
from pathlib import Path

from django import forms
from django.forms import formset_factory

from identity import domain
from identity.metrics import simulation_blocked_values, simulation_live_rules, simulation_region
from identity.simulation import (
    IGNORE,
    MAX_ROWS_PER_FILE,
    DraftRule,
    SimulationInvalid,
    SimulationReport,
    SourceInput,
    csv_rows,
    parse_mapping_text,
    simulate,
)

FILE_SLOTS = 4


class SimulationFileForm(forms.Form):
    file = forms.FileField(
        required=False, help_text=f"UTF-8 CSV with a header row; at most {MAX_ROWS_PER_FILE:,} rows."
    )
    source = forms.CharField(
        required=False, max_length=64, help_text="Source name in the report; the file name if empty."
    )
    mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 32, "placeholder": "Email Address = email\nCustomer = ignore"}),
        help_text="One 'column = identifier type' per line. Columns named like a type (email, phone, user_id) map "
        "themselves; 'ignore' drops one.",
    )

    def clean_mapping(self):
        try:
            return parse_mapping_text(self.cleaned_data["mapping"])
        except SimulationInvalid as error:
            raise forms.ValidationError(str(error)) from error

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload and not cleaned.get("source"):
            cleaned["source"] = Path(upload.name).stem[:64]
        if not upload and (cleaned.get("source") or cleaned.get("mapping")):
            self.add_error("file", "Choose the export this source name or mapping is for.")
        return cleaned


class DraftRuleForm(forms.Form):
    slug = forms.SlugField(widget=forms.HiddenInput)
    priority = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    role = forms.ChoiceField(choices=domain.ROLES)
    normaliser = forms.ChoiceField(choices=domain.NORMALISERS)
    limit_per_profile = forms.IntegerField(required=False, min_value=1, help_text="Empty: no limit.")

    def draft_rule(self) -> DraftRule:
        data = self.cleaned_data
        return DraftRule(
            slug=data["slug"],
            role=data["role"],
            normaliser=data["normaliser"],
            limit_per_profile=data["limit_per_profile"],
            priority=data["priority"],
        )


class _BaseFileFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        chosen = [form.cleaned_data for form in self.forms if form.cleaned_data.get("file")]
        if len(chosen) < 2:
            raise forms.ValidationError("Upload exports from two or more sources.")
        names = [data["source"] for data in chosen]
        if len(set(names)) != len(names):
            raise forms.ValidationError("Give each export its own source name.")


class _BaseRuleFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        slugs = [form.cleaned_data["slug"] for form in self.forms]
        if len(set(slugs)) != len(slugs):
            raise forms.ValidationError("Each identifier type has one rule.")


FileFormSet = formset_factory(SimulationFileForm, formset=_BaseFileFormSet, extra=FILE_SLOTS, max_num=FILE_SLOTS)
RuleFormSet = formset_factory(DraftRuleForm, formset=_BaseRuleFormSet, extra=0)


class SimulationRequest:
    """Both formsets of the page; the rules start from the live identifier types."""

    def __init__(self, data=None, files=None):
        live = [
            {
                "slug": rule.slug,
                "priority": rule.priority,
                "role": rule.role,
                "normaliser": rule.normaliser,
                "limit_per_profile": rule.limit_per_profile,
            }
            for rule in simulation_live_rules()
        ]
        self.files = FileFormSet(data, files, prefix="files")
        self.rules = RuleFormSet(data, prefix="rules", initial=live)
        self.error: str | None = None

    def is_valid(self) -> bool:
        files_ok, rules_ok = self.files.is_valid(), self.rules.is_valid()  # both, so both show their errors
        return files_ok and rules_ok

    def run(self) -> SimulationReport | None:
        """Resolve the uploads in memory; None (and self.error) when the input cannot be simulated."""
        rules = [form.draft_rule() for form in self.rules.forms]
        slugs = {rule.slug for rule in rules}
        sources = []
        for form in self.files.forms:
            data = form.cleaned_data
            if not data.get("file"):
                continue
            # Checked before any file is read, so a typo in the last mapping does not cost a long run.
            unknown = sorted(slug for slug in data["mapping"].values() if slug != IGNORE and slug not in slugs)
            if unknown:
                self.error = f"{data['source']}: unknown identifier types {', '.join(unknown)}."
                return None
            # Streamed: the csv reader pulls lines from the upload as the resolution goes.
            data["file"].seek(0)
            text = io.TextIOWrapper(data["file"].file, encoding="utf-8-sig", newline="")
            sources.append(SourceInput(name=data["source"], rows=csv_rows(text), mapping=data["mapping"]))
        try:
            return simulate(sources, rules=rules, blocked=simulation_blocked_values(), region=simulation_region())
        except SimulationInvalid as error:
            self.error = str(error)
            return None
