"""Input of the review pages: decisions on links and unmerges."""

from django import forms
from django.core.exceptions import ValidationError

MAX_LINKS_PER_DECISION = 200


class LinkIdsField(forms.Field):
    """Several link ids from repeated `links` inputs (checkboxes, hidden inputs)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        try:
            ids = sorted({int(item) for item in values})
        except (TypeError, ValueError) as problem:
            raise ValidationError("Link ids must be whole numbers.", code="invalid") from problem
        if len(ids) > MAX_LINKS_PER_DECISION:
            raise ValidationError(f"Decide on at most {MAX_LINKS_PER_DECISION} links at once.", code="too_many")
        return ids


class ReviewDecisionForm(forms.Form):
    APPROVE, REJECT = "approve", "reject"

    links = LinkIdsField(error_messages={"required": "Select at least one link."})
    decision = forms.ChoiceField(choices=((APPROVE, "Approve"), (REJECT, "Reject")))
    note = forms.CharField(required=False, max_length=500, label="Note")


class UnmergeForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Reason", error_messages={"required": "Say why the merge is wrong."})
