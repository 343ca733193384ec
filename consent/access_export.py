"""The access request's archive: everything held about a person, as JSON files in one ZIP.

Rows are read in chunks and written straight into the ZIP's entries, so a person with a long
history does not have to fit in memory. Identifiers are decrypted (the person is entitled to them);
what was sent to destinations is listed without payloads (those are blanked after sending anyway).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from consent.models import ConsentRecord, PrivacyRequest
from consent.sealing import is_token, unseal_trait_dicts, unseal_values

CHUNK = 2000


@dataclass(frozen=True)
class Archive:
    path: Path
    sha256: str
    size: int
    counts: dict


def _rows(queryset, fields: list[str], unseal: str | None = None) -> Iterable[dict]:
    """Rows as dicts, in id order, a chunk at a time. `unseal`: "traits" (a traits dict) or "value" (one
    trait value) holds sealed personal values, decrypted here: the person is entitled to them."""
    last, cache = 0, {}
    while True:
        chunk = list(queryset.filter(id__gt=last).order_by("id").values("id", *fields)[:CHUNK])
        if not chunk:
            return
        if unseal == "traits":
            unseal_trait_dicts(chunk, cache=cache)
        elif unseal == "value":
            values = unseal_values((row["value"] for row in chunk), cache)
            for row in chunk:
                row["value"] = values.get(row["value"]) if is_token(row["value"]) else row["value"]
        yield from chunk
        last = chunk[-1]["id"]


def _write_list(archive: zipfile.ZipFile, name: str, rows: Iterable[dict]) -> int:
    """A JSON array written item by item into the ZIP entry."""
    count = 0
    with archive.open(name, "w") as entry:
        entry.write(b"[")
        for row in rows:
            entry.write((b",\n" if count else b"\n") + json.dumps(row, cls=DjangoJSONEncoder).encode())
            count += 1
        entry.write(b"\n]\n")
    return count


def access_archive_build(*, request: PrivacyRequest, directory: Path) -> Archive:
    from activations.models import SyncRecord, TriggerSend
    from identity.models import Merge
    from profiles.models import Event, Profile, TraitValue
    from segments.models import ComputedTraitValue, SegmentMembership

    profile_ids = list(request.profiles_found)
    directory.mkdir(parents=True, exist_ok=True)
    # An unguessable name: the directory may be shared, the file is only served through the app.
    path = directory / f"access-request-{request.pk}-{secrets.token_hex(8)}.zip"
    counts: dict[str, int] = {}
    by_profile = Q(profile_id__in=profile_ids)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        counts["profiles.json"] = _write_list(
            archive,
            "profiles.json",
            _rows(
                Profile.objects.filter(id__in=profile_ids),
                [
                    "status",
                    "merged_into_id",
                    "traits",
                    "trait_provenance",
                    "consent",
                    "lifecycle",
                    "lifetime_revenue",
                    "first_seen_at",
                    "last_seen_at",
                    "created_at",
                ],
                unseal="traits",
            ),
        )
        counts["identifiers.json"] = _write_list(archive, "identifiers.json", _identifiers(profile_ids))
        counts["traits.json"] = _write_list(
            archive,
            "traits.json",
            _rows(
                TraitValue.objects.filter(by_profile),
                ["profile_id", "key", "value", "source__slug", "raw_event_id", "observed_at", "is_verified"],
                unseal="value",
            ),
        )
        counts["computed_traits.json"] = _write_list(
            archive,
            "computed_traits.json",
            _rows(ComputedTraitValue.objects.filter(by_profile), ["profile_id", "trait__key", "value", "computed_at"]),
        )
        counts["events.json"] = _write_list(
            archive,
            "events.json",
            _rows(
                Event.objects.filter(by_profile),
                [
                    "profile_id",
                    "type",
                    "name",
                    "occurred_at",
                    "received_at",
                    "properties",
                    "revenue",
                    "currency",
                    "source__slug",
                ],
            ),
        )
        counts["consent.json"] = _write_list(
            archive,
            "consent.json",
            _rows(
                ConsentRecord.objects.filter(by_profile),
                [
                    "profile_id",
                    "purpose",
                    "is_granted",
                    "source__slug",
                    "captured_at",
                    "recorded_at",
                    "scope",
                    "evidence",
                ],
            ),
        )
        counts["segments.json"] = _write_list(
            archive,
            "segments.json",
            _rows(
                SegmentMembership.objects.filter(by_profile),
                ["profile_id", "segment__slug", "segment__name", "entered_at", "exited_at", "is_holdout"],
            ),
        )
        counts["sync_records.json"] = _write_list(
            archive,
            "sync_records.json",
            _rows(
                SyncRecord.objects.filter(by_profile),
                [
                    "profile_id",
                    "run__sync__slug",
                    "run__sync__destination__name",
                    "operation",
                    "status",
                    "skip_reason",
                    "created_at",
                    "sent_at",
                    "applied_at",
                ],
            ),
        )
        counts["trigger_sends.json"] = _write_list(
            archive,
            "trigger_sends.json",
            _rows(
                TriggerSend.objects.filter(by_profile),
                [
                    "profile_id",
                    "trigger__slug",
                    "trigger__destination__name",
                    "channel",
                    "status",
                    "skip_reason",
                    "created_at",
                    "sent_at",
                ],
            ),
        )
        counts["merges.json"] = _write_list(
            archive,
            "merges.json",
            _rows(
                Merge.objects.filter(Q(survivor_id__in=profile_ids) | Q(absorbed_id__in=profile_ids)),
                ["survivor_id", "absorbed_id", "rule", "confidence", "created_at", "unmerged_at"],
            ),
        )
        manifest = {
            "request": request.pk,
            "kind": request.kind,
            "regulation": request.regulation,
            "received_at": request.received_at,
            "generated_at": timezone.now(),
            "profiles": profile_ids,
            "files": counts,
            "about": "Everything this platform holds about the person the request names, one JSON file per kind.",
        }
        archive.writestr("manifest.json", json.dumps(manifest, cls=DjangoJSONEncoder, indent=2))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return Archive(path=path, sha256=digest.hexdigest(), size=path.stat().st_size, counts=counts)


def _identifiers(profile_ids: list[int]) -> Iterable[dict]:
    from identity.models import Identifier

    last = 0
    while True:
        chunk = list(
            Identifier.objects.filter(profile_id__in=profile_ids, id__gt=last)
            .select_related("identifier_type", "source")
            .order_by("id")[:CHUNK]
        )
        if not chunk:
            return
        for identifier in chunk:
            yield {
                "id": identifier.pk,
                "profile_id": identifier.profile_id,
                "type": identifier.identifier_type.slug,
                "value": identifier.display_value,
                "is_verified": identifier.is_verified,
                "source": identifier.source.slug if identifier.source else None,
                "first_seen_at": identifier.first_seen_at,
                "last_seen_at": identifier.last_seen_at,
            }
        last = chunk[-1].pk
