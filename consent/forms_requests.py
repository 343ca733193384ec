"""Forms and the filter of the privacy request pages (the filter is shared with the API)."""

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from consent.models import PrivacyRequest
from consent.requests import RequestInvalid, parse_subject


class PrivacyRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PrivacyRequest.STATUSES, empty_label="any status")
    kind = django_filters.ChoiceFilter(choices=PrivacyRequest.KINDS, empty_label="any kind")
    regulation = django_filters.ChoiceFilter(choices=PrivacyRequest.REGULATIONS, empty_label="any regulation")
    overdue = django_filters.BooleanFilter(method="filter_overdue", label="Overdue")

    class Meta:
        model = PrivacyRequest
        fields = ["status", "kind", "regulation", "overdue"]

    def filter_overdue(self, queryset, name, value):
        if value is None:
            return queryset
        now = timezone.now()
        late = Q(extended_until__isnull=True, due_at__lt=now) | Q(extended_until__lt=now)
        open_and_late = late & ~Q(status=PrivacyRequest.COMPLETED)
        return queryset.filter(open_and_late) if value else queryset.exclude(open_and_late)


class PrivacyRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=PrivacyRequest.KINDS)
    regulation = forms.ChoiceField(choices=PrivacyRequest.REGULATIONS)
    identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text="One type:value per line, e.g. email:ana@example.com or phone:+353 1 555 0100.",
    )
    received_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="When the person's request reached you (deadlines count from it). Empty: now.",
    )

    def clean_identifiers(self):
        try:
            parse_subject(self.cleaned_data["identifiers"])
        except RequestInvalid as error:
            raise forms.ValidationError(error.errors) from error
        return self.cleaned_data["identifiers"]

    def clean_received_at(self):
        received_at = self.cleaned_data.get("received_at")
        if received_at and received_at > timezone.now():
            raise forms.ValidationError("A request cannot be received in the future.")
        return received_at


class ExtendForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="The reason the person is told.")
    notified = forms.BooleanField(label="The person has been told of the extension and why")
