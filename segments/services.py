"""Writes of segments: create, new versions (validated, immutable), publish, roll back, and the
file round trip that lets teams keep audiences in git."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from segments import domain
from segments.models import Segment, SegmentVersion
from segments.selectors import definition_context
from segments.tasks import enqueue_membership_refresh


class SegmentDefinitionInvalid(ValueError):
    """A definition that does not validate; `errors` point at the conditions that are wrong."""

    def __init__(self, errors: list[domain.DefinitionError]):
        self.errors = errors
        super().__init__("; ".join(f"{error.path or 'definition'}: {error.message}" for error in errors))


def segment_validate(
    *, definition, slug: str | None, extra_segments: dict | None = None
) -> list[domain.DefinitionError]:
    """Errors of a definition against what the system knows (event types, identifier types, other
    segments' published definitions, plus `extra_segments` being applied alongside)."""
    context = definition_context()
    segments = {**context["segments"], **(extra_segments or {})}
    if slug is not None:
        segments[slug] = definition  # so a reference back to this segment is seen as a cycle
    return domain.validate_definition(
        definition,
        event_types=context["event_types"],
        identifier_types=context["identifier_types"],
        segments=segments,
        slug=slug,
        computed_traits=context["computed_traits"],
    )


def _raise_if_invalid(errors: list[domain.DefinitionError]) -> None:
    if errors:
        raise SegmentDefinitionInvalid(errors)


@transaction.atomic
def segment_create(
    *,
    slug: str,
    name: str,
    definition: dict,
    note: str,
    author: str,
    description: str = "",
    is_suppression: bool = False,
    holdout_percent: int = 0,
    owner=None,
) -> Segment:
    """A new segment with its first version, published."""
    _raise_if_invalid(segment_validate(definition=definition, slug=slug))
    now = timezone.now()
    segment = Segment.objects.create(
        slug=slug,
        name=name,
        description=description,
        is_suppression=is_suppression,
        holdout_percent=holdout_percent,
        owner=owner,
        created_at=now,
        updated_at=now,
    )
    version = _version_write(segment=segment, definition=definition, note=note, author=author, now=now)
    segment.published_version = version
    segment.save(update_fields=["published_version"])
    transaction.on_commit(lambda: enqueue_membership_refresh(segment_id=segment.pk))
    return segment


def _version_write(*, segment: Segment, definition: dict, note: str, author: str, now) -> SegmentVersion:
    number = (segment.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    return SegmentVersion.objects.create(
        segment=segment,
        number=number,
        definition=definition,
        definition_hash=domain.definition_hash(definition),
        author=author[:150],
        note=note[:500],
        created_at=now,
    )


@transaction.atomic
def segment_version_create(
    *, segment: Segment, definition: dict, note: str, author: str, publish: bool = True
) -> tuple[SegmentVersion, bool]:
    """A new version when the definition changed (returns it and True); the latest version and
    False when it did not, so saving twice or re-applying a file writes nothing."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    _raise_if_invalid(segment_validate(definition=definition, slug=segment.slug))
    latest = segment.versions.order_by("-number").first()
    if latest is not None and latest.definition_hash == domain.definition_hash(definition):
        if publish and segment.published_version_id != latest.pk:
            segment_publish(segment=segment, version=latest)
        return latest, False
    now = timezone.now()
    version = _version_write(segment=segment, definition=definition, note=note, author=author, now=now)
    if publish:
        segment_publish(segment=segment, version=version)
    return version, True


@transaction.atomic
def segment_publish(*, segment: Segment, version: SegmentVersion) -> Segment:
    if version.segment_id != segment.pk:
        raise ValueError(f"version {version.number} belongs to another segment")
    # A published definition may only refer to segments that exist now, without cycles.
    _raise_if_invalid(segment_validate(definition=version.definition, slug=segment.slug))
    segment.published_version = version
    segment.updated_at = timezone.now()
    segment.save(update_fields=["published_version", "updated_at"])
    # Members follow the new definition now, not at the next scheduled refresh: a sync started right
    # after publishing must not send the previous version's audience.
    transaction.on_commit(lambda: enqueue_membership_refresh(segment_id=segment.pk))
    return segment


@transaction.atomic
def segment_rollback(*, segment: Segment, number: int, author: str, note: str = "") -> SegmentVersion:
    """Publish an old version's definition again, as a new version (history only grows)."""
    old = segment.versions.filter(number=number).first()
    if old is None:
        raise ValueError(f"segment {segment.slug} has no version {number}")
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    _raise_if_invalid(segment_validate(definition=old.definition, slug=segment.slug))
    version = _version_write(
        segment=segment,
        definition=old.definition,
        note=note or f"Rollback to version {number}",
        author=author,
        now=timezone.now(),
    )
    segment_publish(segment=segment, version=version)
    return version


# -- files -------------------------------------------------------------------------------------

FILE_FIELDS = ("slug", "name", "description", "is_suppression", "holdout_percent", "definition")


def segment_file_content(segment: Segment) -> str:
    """The reviewable text of a segment: its published definition (else its latest) and settings."""
    version = segment.published_version or segment.versions.order_by("-number").first()
    document = {
        "slug": segment.slug,
        "name": segment.name,
        "description": segment.description,
        "is_suppression": segment.is_suppression,
        "holdout_percent": segment.holdout_percent,
        "definition": version.definition if version else None,
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def segments_export(*, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for segment in Segment.objects.select_related("published_version").order_by("slug"):
        path = directory / f"{segment.slug}.json"
        path.write_text(segment_file_content(segment), encoding="utf-8")
        written.append(path)
    return written


@dataclass
class AppliedFile:
    path: str
    slug: str = ""
    action: str = ""  # created, new_version, settings, unchanged, invalid
    errors: list[str] = field(default_factory=list)
    diff: str = ""
    version: int | None = None


def _read_file(path: Path) -> tuple[dict | None, list[str]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, [f"not a readable JSON file: {error}"]
    if not isinstance(document, dict):
        return None, ["the file must hold one JSON object"]
    unknown = sorted(set(document) - set(FILE_FIELDS))
    problems = [f"unknown field {name!r} (fields: {', '.join(FILE_FIELDS)})" for name in unknown]
    for name in ("slug", "name", "definition"):
        if not document.get(name):
            problems.append(f"{name!r} is required")
    if document.get("slug") and path.stem != document["slug"]:
        problems.append(f"the file name should be {document['slug']}.json")
    holdout = document.get("holdout_percent", 0)
    if not isinstance(holdout, int) or isinstance(holdout, bool) or not 0 <= holdout <= 90:
        problems.append("'holdout_percent' must be a whole number from 0 to 90")
    return document, problems


def segments_apply(*, directory: Path, author: str, dry_run: bool = False) -> list[AppliedFile]:
    """Create segments and new versions for files whose definition or settings changed. Every file
    is checked first (segment references may point at other files); if any is invalid nothing is
    applied. A dry run reports the same without writing."""
    results, documents = [], {}
    for path in sorted(directory.glob("*.json")):
        document, problems = _read_file(path)
        result = AppliedFile(path=str(path), slug=(document or {}).get("slug", ""), errors=problems)
        results.append(result)
        if document is not None and not problems:
            documents[document["slug"]] = (document, result)
    pending = {slug: document["definition"] for slug, (document, _) in documents.items()}
    for slug, (document, result) in documents.items():
        errors = segment_validate(definition=document["definition"], slug=slug, extra_segments=pending)
        result.errors.extend(f"{error.path or 'definition'}: {error.message}" for error in errors)
    for result in results:
        if result.errors:
            result.action = "invalid"
    if any(result.errors for result in results) or dry_run:
        for document, result in documents.values():
            if not result.errors:
                _plan(document, result)
        return results
    with transaction.atomic():
        for slug in _dependency_order(pending):
            document, result = documents[slug]
            _plan(document, result)
            _apply(document, result, author=author)
    return results


def _dependency_order(definitions: dict[str, dict]) -> list[str]:
    """Slugs ordered so a segment comes after the segments its definition refers to (validation
    has already rejected cycles)."""
    ordered, placed = [], set()
    references = {
        slug: set(domain.definition_dependencies(definition, definitions).segments) & set(definitions) - {slug}
        for slug, definition in definitions.items()
    }
    while len(ordered) < len(definitions):
        ready = sorted(slug for slug in definitions if slug not in placed and references[slug] <= placed)
        if not ready:
            raise ValueError("segment references form a cycle")
        ordered.extend(ready)
        placed.update(ready)
    return ordered


def _plan(document: dict, result: AppliedFile) -> None:
    segment = Segment.objects.filter(slug=document["slug"]).select_related("published_version").first()
    if segment is None:
        result.action = "created"
        result.diff = domain.definition_diff(None, document["definition"])
        return
    current = segment.published_version or segment.versions.order_by("-number").first()
    if current is None or current.definition_hash != domain.definition_hash(document["definition"]):
        result.action = "new_version"
        result.diff = domain.definition_diff(current.definition if current else None, document["definition"])
    elif any(
        getattr(segment, name) != document.get(name, default)
        for name, default in (("name", None), ("description", ""), ("is_suppression", False), ("holdout_percent", 0))
    ):
        result.action = "settings"
    else:
        result.action = "unchanged"


def _apply(document: dict, result: AppliedFile, *, author: str) -> None:
    note = f"Applied from {Path(result.path).name}"
    if result.action == "created":
        segment = segment_create(
            slug=document["slug"],
            name=document["name"],
            definition=document["definition"],
            note=note,
            author=author,
            description=document.get("description", ""),
            is_suppression=document.get("is_suppression", False),
            holdout_percent=document.get("holdout_percent", 0),
        )
        result.version = segment.published_version.number
        return
    segment = Segment.objects.get(slug=document["slug"])
    if result.action == "new_version":
        version, _ = segment_version_create(
            segment=segment, definition=document["definition"], note=note, author=author
        )
        result.version = version.number
    segment.name = document["name"]
    segment.description = document.get("description", "")
    segment.is_suppression = document.get("is_suppression", False)
    segment.holdout_percent = document.get("holdout_percent", 0)
    segment.updated_at = timezone.now()
    segment.save(update_fields=["name", "description", "is_suppression", "holdout_percent", "updated_at"])
