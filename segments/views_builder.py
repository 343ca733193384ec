"""The segment builder page: conditions edited from menus, the JSON beside them, a live audience.

The state is the definition JSON in the page's textarea. Each builder control posts that JSON plus one
operation to builder_update, which applies it (segments.builder) and answers with the form fragment and,
out of band, the JSON, the validation messages and the audience preview. Saving is a plain form POST
(works without JavaScript) that writes a new segment or a new version with a note.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from cdp_site import pii
from segments import builder, domain
from segments.catalog import builder_catalog
from segments.forms import RESERVED_SLUGS, DefinitionField
from segments.models import Segment
from segments.selectors import segment_preview
from segments.services import SegmentDefinitionInvalid, segment_create, segment_validate, segment_version_create

EMPTY_DEFINITION = {"all": []}
SAMPLE_SIZE = 10
OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "in": "is one of",
    "contains": "contains",
    "exists": "is set",
    "gt": "greater than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
    "before": "before",
    "after": "after",
    "within_last_days": "within the last N days",
}


class BuilderSaveForm(forms.Form):
    definition = DefinitionField(label="Definition (JSON)")
    note = forms.CharField(max_length=500, help_text="Why this version: kept in the history.")
    segment = forms.SlugField(required=False, widget=forms.HiddenInput)
    slug = forms.SlugField(max_length=100, required=False, help_text="Used in files and the API; cannot change later.")
    name = forms.CharField(max_length=200, required=False)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("segment"):
            for name in ("slug", "name"):
                if not cleaned.get(name) and name not in self.errors:
                    self.add_error(name, "Required for a new segment.")
            if cleaned.get("slug") in RESERVED_SLUGS:
                self.add_error("slug", f"'{cleaned['slug']}' is the name of a page; choose another slug.")
            elif cleaned.get("slug") and Segment.objects.filter(slug=cleaned["slug"]).exists():
                self.add_error("slug", "A segment with this slug exists; open it in the builder to add a version.")
        return cleaned


def _author(request) -> str:
    return f"user:{request.user.get_username()}"


def _hints(catalog) -> builder.Hints:
    return builder.Hints(
        trait_keys=tuple(trait.key for trait in catalog.traits),
        event_types=tuple(event.type for event in catalog.events),
        purposes=tuple(slug for slug, _ in catalog.purposes),
        identifier_types=tuple(slug for slug, _ in catalog.identifier_types),
        segments=tuple(slug for slug, _ in catalog.segments),
        trait_kinds=catalog.trait_kinds(),
        property_kinds=catalog.property_kinds(),
        today=timezone.localdate().isoformat(),
    )


def _display_name(row: dict) -> str:
    traits = row.get("traits") if isinstance(row.get("traits"), dict) else {}
    name = traits.get("name") or " ".join(str(traits[k]) for k in ("first_name", "last_name") if traits.get(k))
    # Masked, as on every staff page: the builder is the marketers' page (a reveal is per profile).
    return pii.mask_name(name) if name else f"Profile {row['id']}"


def _preview(definition, errors) -> tuple[dict | None, str]:
    if errors:
        return None, "Fix the problems shown to see the audience."
    try:
        preview = segment_preview(definition=definition, sample_size=SAMPLE_SIZE)
    except (LookupError, ValueError) as error:
        return None, f"The audience cannot be counted: {error}"
    for row in preview["sample"]:
        row["display_name"] = _display_name(row)
    return preview, ""


def _annotate(root: builder.Node, catalog) -> None:
    """Mark what each condition names as known to the menus, and give event conditions their properties."""
    traits = {trait.key for trait in catalog.traits}
    events = {event.type: event for event in catalog.events}
    vocabularies = {
        "consent": {slug for slug, _ in catalog.purposes},
        "identifier": {slug for slug, _ in catalog.identifier_types},
        "segment": {slug for slug, _ in catalog.segments},
    }
    for node in builder.nodes(root):
        condition = node.condition if isinstance(node.condition, dict) else {}
        if node.kind == "trait":
            node.known = condition.get("trait") in traits
        elif node.kind in ("event", "step"):
            event = events.get(condition.get("event"))
            node.known = event is not None
            node.properties = event.properties if event else ()
            names = {prop.name for prop in node.properties}
            for item in node.filters:
                item.properties = node.properties
                item.known = isinstance(item.condition, dict) and item.condition.get("property") in names
        elif node.kind in vocabularies:
            node.known = condition.get(node.kind) in vocabularies[node.kind]


def _context(*, definition, segment: Segment | None, catalog=None, message: str = "", json_text: str | None = None):
    """Everything the page and its fragments render for one definition."""
    catalog = catalog or builder_catalog(exclude_segment=segment.slug if segment else None)
    empty = isinstance(definition, dict) and definition.get(domain.condition_kind(definition) or "") == []
    # A new, empty definition is where everyone starts: not a problem to shout about (saving still refuses it).
    errors = [] if empty else segment_validate(definition=definition, slug=segment.slug if segment else None)
    root = builder.outline(definition)
    general = builder.attach_errors(root, errors)
    _annotate(root, catalog)
    preview, preview_note = (None, "Add a condition to see the audience.") if empty else _preview(definition, errors)
    return {
        "segment": segment,
        "definition": definition,
        "json_text": json_text if json_text is not None else json.dumps(definition, indent=2, ensure_ascii=False),
        "root": root,
        "empty": empty,
        "errors": errors,
        "general_errors": general,
        "message": message,
        "preview": preview,
        "preview_note": preview_note,
        "catalog": catalog,
        "kinds": builder.ADDABLE_KINDS,
        "trait_operators": [(op, OPERATOR_LABELS[op]) for op in domain.TRAIT_OPERATORS],
        "property_operators": [(op, OPERATOR_LABELS[op]) for op in domain.PROPERTY_OPERATORS],
        "count_operators": [(op, OPERATOR_LABELS[op]) for op in domain.COUNT_OPERATORS],
        "confidence_operators": [(op, OPERATOR_LABELS[op]) for op in domain.MERGE_CONFIDENCE_OPERATORS],
    }


def _page(request, context, *, form=None, status=200):
    segment = context["segment"]
    form = form or BuilderSaveForm(initial={"segment": segment.slug if segment else ""})
    return render(request, "segments/builder.html", {**context, "save_form": form}, status=status)


def _initial_definition(segment: Segment) -> dict:
    version = segment.published_version or segment.versions.order_by("-number").first()
    return version.definition if version else dict(EMPTY_DEFINITION)


@login_required
@require_GET
@permission_required("segments.view_segment", raise_exception=True)
def builder_new(request):
    return _page(request, _context(definition=dict(EMPTY_DEFINITION), segment=None))


@login_required
@require_GET
@permission_required("segments.view_segment", raise_exception=True)
def builder_edit(request, slug):
    segment = get_object_or_404(Segment.objects.select_related("published_version"), slug=slug)
    return _page(request, _context(definition=_initial_definition(segment), segment=segment))


def _parse(text: str):
    """The definition typed in the textarea, or a message saying why it is not one."""
    try:
        definition = json.loads(text or "")
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}: {error.msg}"
        return None, f"The JSON is not valid ({where}). The form shows the last valid definition."
    if not isinstance(definition, dict):
        return None, 'A definition is one JSON object, like {"all": [...]}. The form shows the last valid definition.'
    return definition, ""


@login_required
@require_POST
@permission_required("segments.view_segment", raise_exception=True)
def builder_update(request):
    """Apply one operation (or re-read the JSON) and answer with the re-rendered fragments."""
    slug = request.POST.get("segment") or ""
    segment = get_object_or_404(Segment, slug=slug) if slug else None
    operation = {key: request.POST.get(key, "") for key in ("op", "path", "value", "kind", "group")}
    text = request.POST.get("definition", "")
    definition, problem = _parse(text)
    from_json = operation["op"] == "json"
    if definition is None:
        # The form stays as it was; only the message changes.
        context = {"message": problem, "errors": [], "general_errors": [], "root": None}
        if not (request.htmx and not request.htmx.boosted):
            page = _context(definition=dict(EMPTY_DEFINITION), segment=segment, message=problem, json_text=text)
            return _page(request, page, status=400)
        response = render(request, "segments/_builder_errors.html", {**context, "oob": True})
        response["HX-Reswap"] = "none"
        return response
    catalog = builder_catalog(exclude_segment=segment.slug if segment else None)
    message = ""
    if not from_json:
        try:
            definition = builder.apply(definition, operation, _hints(catalog))
        except builder.BuilderError as error:
            message = str(error)
    context = _context(definition=definition, segment=segment, catalog=catalog, message=message)
    if request.htmx and not request.htmx.boosted:
        context["swap_json"] = not from_json
        return render(request, "segments/_builder_update.html", context)
    return _page(request, context)


@login_required
@require_POST
@permission_required("segments.view_segment", raise_exception=True)
def builder_save(request):
    """Save the definition with a note: a new segment (slug and name) or a new version of one."""
    slug = request.POST.get("segment") or ""
    segment = get_object_or_404(Segment, slug=slug) if slug else None
    needed = "segments.add_segmentversion" if segment else "segments.add_segment"
    if not request.user.has_perm(needed):
        raise PermissionDenied
    form = BuilderSaveForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if segment is None:
                created = segment_create(
                    slug=data["slug"],
                    name=data["name"],
                    definition=data["definition"],
                    note=data["note"],
                    author=_author(request),
                    owner=request.user,
                )
                messages.success(request, f"Segment {created.name} created and published (version 1).")
                return redirect("segments:segment_detail", slug=created.slug)
            version, changed = segment_version_create(
                segment=segment, definition=data["definition"], note=data["note"], author=_author(request)
            )
        except SegmentDefinitionInvalid as error:
            form.add_error(None, "The definition has problems; they are shown next to the conditions.")
            for problem in error.errors:
                form.add_error("definition", str(problem))
        else:
            if changed:
                messages.success(request, f"Version {version.number} saved and published.")
            else:
                messages.info(request, f"Nothing changed: version {version.number} is the same definition.")
            return redirect("segments:segment_detail", slug=segment.slug)
    definition, problem = _parse(request.POST.get("definition", ""))
    if definition is None:
        definition = _initial_definition(segment) if segment else dict(EMPTY_DEFINITION)
    context = _context(
        definition=definition, segment=segment, message=problem, json_text=request.POST.get("definition", "")
    )
    return _page(request, context, form=form, status=400)
