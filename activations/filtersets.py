"""Filters shared by the pages and the API."""

import django_filters

from activations import domain
from activations.models import Sync, SyncRecord, SyncRun, Trigger, TriggerSend


class SyncRecordFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SyncRecord.STATUSES, empty_label="any status")
    operation = django_filters.ChoiceFilter(choices=domain.OPERATIONS, empty_label="any operation")
    skip_reason = django_filters.ChoiceFilter(choices=domain.SKIP_REASONS, empty_label="any skip reason")

    class Meta:
        model = SyncRecord
        fields = ["status", "operation", "skip_reason"]


class SyncRunFilter(django_filters.FilterSet):
    sync = django_filters.ModelChoiceFilter(queryset=Sync.objects.all(), to_field_name="slug")
    status = django_filters.ChoiceFilter(choices=SyncRun.STATUSES)
    is_dry_run = django_filters.BooleanFilter()

    class Meta:
        model = SyncRun
        fields = ["sync", "status", "is_dry_run"]


class TriggerSendFilter(django_filters.FilterSet):
    trigger = django_filters.ModelChoiceFilter(queryset=Trigger.objects.all(), to_field_name="slug")
    status = django_filters.ChoiceFilter(choices=TriggerSend.STATUSES)

    class Meta:
        model = TriggerSend
        fields = ["trigger", "status"]
