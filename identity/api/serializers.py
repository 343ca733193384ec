from rest_framework import serializers

from identity.models import IdentityLink, Merge, Unmerge
from profiles.api.serializers import IdentifierSerializer


class MergeDetailSerializer(serializers.ModelSerializer):
    moved = serializers.SerializerMethodField()

    class Meta:
        model = Merge
        fields = [
            "id",
            "survivor",
            "absorbed",
            "link",
            "rule",
            "actor",
            "confidence",
            "evidence",
            "moved",
            "created_at",
            "unmerged_at",
        ]

    def get_moved(self, merge) -> dict[str, int]:
        """How many rows of each kind the merge moved (the ids are in the audit row)."""
        return {name: len(ids) for name, ids in (merge.moved or {}).items()}


class UnmergeRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class UnmergeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Unmerge
        fields = [
            "id",
            "merge",
            "restored",
            "remaining",
            "split_off",
            "rejected_links",
            "actor",
            "reason",
            "moved",
            "created_at",
        ]


class IdentityLinkSerializer(serializers.ModelSerializer):
    from_identifier = IdentifierSerializer(read_only=True)
    to_identifier = IdentifierSerializer(read_only=True)
    from_profile = serializers.IntegerField(source="from_identifier.profile_id", read_only=True)
    to_profile = serializers.IntegerField(source="to_identifier.profile_id", read_only=True)

    class Meta:
        model = IdentityLink
        fields = [
            "id",
            "from_identifier",
            "to_identifier",
            "from_profile",
            "to_profile",
            "kind",
            "status",
            "confidence",
            "rule",
            "evidence",
            "reason",
            "created_at",
            "reviewed_by",
            "reviewed_at",
            "review_note",
        ]


class ReviewDecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReviewDecisionResultSerializer(serializers.Serializer):
    link = IdentityLinkSerializer()
    merge = MergeDetailSerializer(allow_null=True)
