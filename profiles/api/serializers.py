from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cdp_site import pii
from identity.models import Identifier, Merge
from profiles.models import Event, Profile, RawEvent, Source


def _reveals(serializer) -> bool:
    """Cleartext only when the view revealed it (a permitted, logged `?reveal=1`); else masked."""
    return bool(serializer.context.get("reveal"))


class IdentifierSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="identifier_type.slug")
    value = serializers.SerializerMethodField(help_text="Masked when personal, unless revealed.")
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Identifier
        fields = ["type", "value", "source", "is_verified", "first_seen_at", "last_seen_at"]

    def get_value(self, identifier) -> str:
        return identifier.display_value if _reveals(self) else pii.identifier_masked(identifier)


class MergeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merge
        fields = ["id", "survivor", "absorbed", "rule", "actor", "confidence", "evidence", "created_at", "unmerged_at"]


class ProfileListSerializer(serializers.ModelSerializer):
    display_name = serializers.SerializerMethodField(help_text="Initials, unless revealed.")

    class Meta:
        model = Profile
        fields = [
            "id",
            "display_name",
            "lifecycle",
            "lifetime_revenue",
            "merge_confidence",
            "first_seen_at",
            "last_seen_at",
        ]

    def get_display_name(self, profile) -> str:
        return profile.display_name if _reveals(self) else pii.display_name_masked(profile)


class TraitWithProvenanceSerializer(serializers.Serializer):
    value = serializers.JSONField()
    source = serializers.CharField(allow_null=True)
    observed_at = serializers.CharField(allow_null=True)
    is_verified = serializers.BooleanField()


class ProfileDetailSerializer(serializers.ModelSerializer):
    display_name = serializers.SerializerMethodField(help_text="Initials, unless revealed.")
    identifiers = IdentifierSerializer(many=True, read_only=True)
    traits = serializers.SerializerMethodField()
    merges = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = [*ProfileListSerializer.Meta.fields, "status", "identifiers", "traits", "consent", "merges"]

    get_display_name = ProfileListSerializer.get_display_name

    @extend_schema_field(serializers.DictField(child=TraitWithProvenanceSerializer()))
    def get_traits(self, profile):
        slugs = self.context["source_slugs"]
        reveal = _reveals(self)
        result = {}
        for key, value in sorted(profile.clear_traits.items()):
            entry = profile.trait_provenance.get(key) or {}
            result[key] = {
                "value": value if reveal else pii.mask_value(key, value),
                "source": slugs.get(entry.get("source_id")),
                "observed_at": entry.get("observed_at"),
                "is_verified": bool(entry.get("is_verified")),
            }
        return result

    @extend_schema_field(MergeSerializer(many=True))
    def get_merges(self, profile):
        return MergeSerializer(self.context["merges"], many=True).data


class EventSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    properties = serializers.SerializerMethodField(help_text="Personal fields masked.")

    class Meta:
        model = Event
        fields = ["id", "type", "name", "occurred_at", "received_at", "source", "properties", "revenue", "currency"]

    def get_properties(self, event) -> dict:
        return pii.mask_json(event.properties or {})


class SourceSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Source
        fields = ["name", "slug", "kind", "is_active", "owner", "priority", "freshness_sla_minutes", "created_at"]


class RawEventSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = RawEvent
        fields = ["id", "source", "external_id", "topic", "received_at", "status", "error", "attempts", "processed_at"]


class RawEventDetailSerializer(RawEventSerializer):
    payload = serializers.SerializerMethodField(help_text="As received; personal fields masked unless revealed.")

    class Meta(RawEventSerializer.Meta):
        fields = [*RawEventSerializer.Meta.fields, "payload", "headers"]

    def get_payload(self, raw) -> dict:
        return raw.payload if _reveals(self) else pii.mask_json(raw.payload)
