from rest_framework import serializers

from segments.models import Segment, SegmentVersion


class SegmentVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SegmentVersion
        fields = ["number", "definition", "definition_hash", "author", "note", "created_at"]


class SegmentSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    published_version = SegmentVersionSerializer(read_only=True)

    class Meta:
        model = Segment
        fields = [
            "slug",
            "name",
            "description",
            "owner",
            "is_suppression",
            "holdout_percent",
            "published_version",
            "created_at",
            "updated_at",
        ]


class SegmentCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    is_suppression = serializers.BooleanField(required=False, default=False)
    holdout_percent = serializers.IntegerField(required=False, default=0, min_value=0, max_value=90)
    definition = serializers.JSONField()
    note = serializers.CharField(max_length=500)

    def validate_slug(self, value):
        from segments.forms import RESERVED_SLUGS

        if value in RESERVED_SLUGS:
            raise serializers.ValidationError(f"'{value}' is the name of a page; choose another slug.")
        if Segment.objects.filter(slug=value).exists():
            raise serializers.ValidationError(f"A segment {value!r} exists already; add a version to it instead.")
        return value


class VersionCreateSerializer(serializers.Serializer):
    definition = serializers.JSONField()
    note = serializers.CharField(max_length=500)
    publish = serializers.BooleanField(required=False, default=True)


class VersionNumberSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=1)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class PreviewRequestSerializer(serializers.Serializer):
    definition = serializers.JSONField()


class DefinitionErrorSerializer(serializers.Serializer):
    path = serializers.CharField()
    message = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    profiles = serializers.IntegerField(help_text="Active profiles in all.")
    sample = serializers.ListField(child=serializers.DictField())


class ComputedTraitSerializer(serializers.ModelSerializer):
    fit = serializers.SerializerMethodField(help_text="Predictive kinds: the latest fit's model and quality.")

    class Meta:
        from segments.models import ComputedTrait

        model = ComputedTrait
        fields = [
            "key",
            "name",
            "kind",
            "event_type",
            "property",
            "where",
            "within_last_days",
            "last_computed_at",
            "fit",
        ]
        read_only_fields = ["last_computed_at"]

    def get_fit(self, trait) -> dict | None:
        fit = trait.fits.order_by("-fitted_at").first() if trait.pk else None
        if fit is None:
            return None
        return {"fitted_at": fit.fitted_at, "as_of": fit.as_of, "sample_size": fit.sample_size, **fit.model}
