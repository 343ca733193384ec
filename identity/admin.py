from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Least
from django.template.response import TemplateResponse

from identity import services
from identity.filtersets import CONFIDENCE_BANDS, confidence_band_q
from identity.forms_review import ReviewDecisionForm, UnmergeForm
from identity.models import BlockedValue, Identifier, IdentifierType, IdentityLink, Merge, Unmerge
from identity.views_review import actor_of, links_decide
from profiles.models import Profile


class MergeConfidenceFilter(admin.SimpleListFilter):
    """Profiles by the band of their merge confidence (the weakest link holding them together).

    Usable on any admin whose rows have a `merge_confidence` field; subclasses annotate it."""

    title = "merge confidence"
    parameter_name = "merge_confidence"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, _lower, _upper in CONFIDENCE_BANDS]

    def with_merge_confidence(self, queryset):
        return queryset

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return self.with_merge_confidence(queryset).filter(confidence_band_q("merge_confidence", self.value()))


class LinkMergeConfidenceFilter(MergeConfidenceFilter):
    """Links by the lower merge confidence of the profiles holding their two ends."""

    def with_merge_confidence(self, queryset):
        def end(side):
            return Subquery(
                Profile.objects.filter(identifiers=OuterRef(f"{side}_identifier_id")).values("merge_confidence")[:1]
            )

        return queryset.annotate(merge_confidence=Least(end("from"), end("to")))


@admin.register(IdentifierType)
class IdentifierTypeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "role", "normaliser", "limit_per_profile", "priority", "is_pii"]


@admin.register(BlockedValue)
class BlockedValueAdmin(admin.ModelAdmin):
    list_display = ["value", "identifier_type", "reason"]
    list_filter = ["identifier_type"]


@admin.register(Identifier)
class IdentifierAdmin(admin.ModelAdmin):
    list_display = ["id", "identifier_type", "display_value", "profile", "is_verified", "last_seen_at"]
    list_filter = ["identifier_type", "is_verified"]
    raw_id_fields = ["profile", "source"]
    exclude = ["encrypted_value", "lookup_hash"]
    readonly_fields = ["display_value"]


def _report(modeladmin, request, done_message: str, done: int, refusals: list[str]) -> None:
    for refusal in refusals:
        modeladmin.message_user(request, refusal, messages.ERROR)
    if done:
        modeladmin.message_user(request, done_message, messages.SUCCESS)


@admin.register(IdentityLink)
class IdentityLinkAdmin(admin.ModelAdmin):
    """The review queue in the admin: filter to pending review or blocked, then approve or reject."""

    list_display = [
        "id",
        "from_end",
        "to_end",
        "status",
        "kind",
        "rule",
        "confidence",
        "reason",
        "reviewed_by",
        "created_at",
    ]
    list_filter = ["status", "kind", "rule", LinkMergeConfidenceFilter]
    list_select_related = ["from_identifier__identifier_type", "to_identifier__identifier_type"]
    # Statuses change only through the review services (the actions below), which merge and audit.
    readonly_fields = [f.name for f in IdentityLink._meta.fields]
    actions = ["approve_selected", "reject_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="from", ordering="from_identifier")
    def from_end(self, link):
        return f"{link.from_identifier} (profile {link.from_identifier.profile_id})"

    @admin.display(description="to", ordering="to_identifier")
    def to_end(self, link):
        return f"{link.to_identifier} (profile {link.to_identifier.profile_id})"

    def _decide(self, request, queryset, decision):
        decided, merges, refusals = links_decide(
            link_ids=sorted(queryset.values_list("pk", flat=True)),
            decision=decision,
            actor=actor_of(request),
            note="decided in the admin",
        )
        return decided, merges, refusals

    @admin.action(description="Approve selected links (merge their profiles)", permissions=["change"])
    def approve_selected(self, request, queryset):
        decided, merges, refusals = self._decide(request, queryset, ReviewDecisionForm.APPROVE)
        _report(self, request, f"Approved {len(decided)} links; {merges} merges made.", len(decided), refusals)

    @admin.action(description="Reject selected links (keep the profiles apart)", permissions=["change"])
    def reject_selected(self, request, queryset):
        decided, _merges, refusals = self._decide(request, queryset, ReviewDecisionForm.REJECT)
        _report(self, request, f"Rejected {len(decided)} links.", len(decided), refusals)


class UndoneFilter(admin.SimpleListFilter):
    title = "unmerged"
    parameter_name = "unmerged"

    def lookups(self, request, model_admin):
        return [("yes", "Undone"), ("no", "In force")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(unmerged_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(unmerged_at__isnull=True)
        return queryset


@admin.register(Merge)
class MergeAdmin(admin.ModelAdmin):
    list_display = ["id", "survivor", "absorbed", "rule", "actor", "confidence", "created_at", "unmerged_at"]
    list_filter = ["rule", UndoneFilter]
    readonly_fields = [f.name for f in Merge._meta.fields]
    actions = ["unmerge_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_unmerge_permission(self, request):
        return request.user.has_perm("identity.add_unmerge")

    @admin.action(description="Unmerge selected merges (asks for a reason)", permissions=["unmerge"])
    def unmerge_selected(self, request, queryset):
        form = UnmergeForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            # First step (or an empty reason): ask why, like the admin's delete confirmation.
            context = {
                **self.admin_site.each_context(request),
                "title": "Unmerge merges",
                "opts": self.model._meta,
                "merges": queryset.order_by("-created_at"),
                "form": form,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "identity/review_admin_unmerge.html", context)
        done, refusals = 0, []
        for merge_id in sorted(queryset.values_list("pk", flat=True)):
            try:
                services.merge_unmerge(merge_id=merge_id, actor=actor_of(request), reason=form.cleaned_data["reason"])
            except services.IdentityActionError as problem:
                refusals.append(f"Merge {merge_id}: {problem}.")
            else:
                done += 1
        _report(self, request, f"Unmerged {done} merges.", done, refusals)
        return None


@admin.register(Unmerge)
class UnmergeAdmin(admin.ModelAdmin):
    """The audit trail of unmerges: read only, made by the unmerge action and pages."""

    list_display = ["id", "merge", "restored", "remaining", "actor", "reason", "created_at"]
    readonly_fields = [f.name for f in Unmerge._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
