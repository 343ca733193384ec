"""The audit log's filters, shared by the page and the API."""

import django_filters
from django.db.models import Q

from cdp_site.models import AuditEntry


class AuditEntryFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_text", label="Search", help_text="Words in the summary, actor or action, or a target id."
    )
    actor = django_filters.CharFilter(lookup_expr="icontains", help_text="e.g. `user:gina` or part of it.")
    action = django_filters.CharFilter(
        lookup_expr="istartswith", help_text="An action or its prefix: `merge.` is every merge action."
    )
    target_type = django_filters.CharFilter(help_text="e.g. `profiles.profile`, `identity.merge`.")
    target_id = django_filters.CharFilter()
    since = django_filters.DateFilter(field_name="at", lookup_expr="date__gte", label="From (date)")
    until = django_filters.DateFilter(field_name="at", lookup_expr="date__lte", label="To (date)")

    class Meta:
        model = AuditEntry
        fields = ["q", "actor", "action", "target_type", "target_id", "since", "until"]

    def filter_text(self, queryset, name, value):
        for word in value.split():
            queryset = queryset.filter(
                Q(summary__icontains=word) | Q(actor__icontains=word) | Q(action__icontains=word) | Q(target_id=word)
            )
        return queryset
