import django_filters

from profiles.models import RawEvent, Source


class RawEventFilter(django_filters.FilterSet):
    source = django_filters.ModelChoiceFilter(queryset=Source.objects.all(), to_field_name="slug")
    status = django_filters.ChoiceFilter(choices=RawEvent.STATUSES)
    external_id = django_filters.CharFilter()
    topic = django_filters.CharFilter()
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = RawEvent
        fields = ["source", "status", "external_id", "topic"]
