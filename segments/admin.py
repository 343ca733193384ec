from django import forms
from django.contrib import admin

from segments.models import ComputedTrait, Segment, SegmentVersion


class SegmentVersionInline(admin.TabularInline):
    model = SegmentVersion
    fields = ["number", "note", "author", "created_at", "definition_hash"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False  # versions are written by the segment services, which validate them


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "published_version", "is_suppression", "holdout_percent", "updated_at"]
    list_filter = ["is_suppression"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "published_version", "created_at", "updated_at"]
    inlines = [SegmentVersionInline]

    def has_add_permission(self, request):
        return False  # created through the pages, the API or `segments apply`, which validate definitions


@admin.register(SegmentVersion)
class SegmentVersionAdmin(admin.ModelAdmin):
    list_display = ["segment", "number", "author", "note", "created_at"]
    readonly_fields = [f.name for f in SegmentVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ComputedTraitForm(forms.ModelForm):
    class Meta:
        model = ComputedTrait
        fields = ["key", "name", "kind", "event_type", "property", "where", "within_last_days"]

    def clean(self):
        from segments.computed import computed_trait_errors

        cleaned = super().clean()
        if not self.errors:
            for error in computed_trait_errors(
                kind=cleaned["kind"],
                event_type=cleaned["event_type"],
                property=cleaned.get("property", ""),
                where=cleaned.get("where") or [],
                within_last_days=cleaned.get("within_last_days"),
            ):
                self.add_error(None, f"{error.path or 'trait'}: {error.message}")
        return cleaned


@admin.register(ComputedTrait)
class ComputedTraitAdmin(admin.ModelAdmin):
    form = ComputedTraitForm
    list_display = [
        "key",
        "name",
        "kind",
        "event_type",
        "property",
        "within_last_days",
        "last_computed_at",
        "fit_quality",
    ]

    @admin.display(description="fit quality (held out)")
    def fit_quality(self, trait):
        fit = trait.fits.order_by("-fitted_at").first()
        if fit is None:
            return "–"
        metrics = fit.model.get("metrics", {})
        if trait.kind == ComputedTrait.CHURN_RISK:
            base = metrics.get("brier_base_rate")
            return f"AUC {metrics.get('auc')}, Brier {metrics.get('brier')} (base rate {base})"
        return f"R² {metrics.get('r2')}, MAE {metrics.get('mae')} (mean predictor {metrics.get('mae_mean')})"

    readonly_fields = ["last_computed_at", "created_at"]
    actions = ["refresh"]

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        if obj.created_at is None:
            obj.created_at = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.action(description="Recompute the selected computed traits now", permissions=["change"])
    def refresh(self, request, queryset):
        from segments.computed import computed_trait_refresh
        from segments.predictive import predictive_trait_refresh

        for trait in queryset:
            if trait.kind in ComputedTrait.PREDICTIVE_KINDS:
                try:
                    metrics = predictive_trait_refresh(trait=trait).model["metrics"]
                except ValueError as error:
                    self.message_user(request, str(error), level="error")
                    continue
                self.message_user(request, f"{trait.key}: refitted; held-out quality {metrics}.")
            else:
                written = computed_trait_refresh(trait=trait)
                self.message_user(request, f"{trait.key}: recomputed ({written} values).")
