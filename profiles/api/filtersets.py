import django_filters

from profiles.models import Event, Profile


class ProfileFilter(django_filters.FilterSet):
    identifier = django_filters.CharFilter(
        method="filter_identifier", help_text="`type:value`, normalised as at ingest, e.g. `email:ada@example.com`."
    )
    lifecycle = django_filters.ChoiceFilter(choices=Profile.LIFECYCLES)
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Profile
        fields = ["identifier", "lifecycle", "updated_since"]

    def filter_identifier(self, queryset, name, value):
        # Validated (and resolved) by the view, which answers 400 with what was wrong.
        return queryset.filter(identifiers__in=self.request.resolved_identifiers).distinct()


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter()
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["type", "occurred_after", "occurred_before"]
