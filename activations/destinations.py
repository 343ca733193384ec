"""Destinations: validated contracts, secrets encrypted at rest, and a connection test."""

from __future__ import annotations

import json

import httpx
from django.db import transaction
from django.utils import timezone

from activations import domain
from activations.connectors import ConnectorError, connector_class, connector_for
from activations.connectors.base import excerpt
from activations.delivery import client_for
from activations.models import Destination
from cdp_site.audit import audit_record

# Until every caller passes `actor`, a change from a caller that does not is recorded as this.
UNATTRIBUTED = "unattributed"


class DestinationInvalid(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
        self.errors = errors


def connector_defaults(kind: str) -> dict:
    """What a new destination of this kind starts with."""
    cls = connector_class(kind)
    return {
        "rate_limit_per_second": cls.default_rate_limit,
        "batch_size": cls.max_batch_size,
        "pii_mode": domain.HASHED if domain.HASHED in cls.pii_modes and len(cls.pii_modes) == 1 else domain.CLEARTEXT,
        "operations": sorted(cls.operations - {domain.MESSAGE}) or [domain.MESSAGE],
    }


def destination_validate(destination: Destination) -> None:
    errors: dict[str, list[str]] = {}
    try:
        cls = connector_class(destination.kind)
    except ConnectorError as error:
        raise DestinationInvalid({"kind": [str(error)]}) from error
    try:
        domain.check_contract(
            fields=destination.fields,
            idempotency_key=destination.idempotency_key,
            operations=destination.operations,
            purpose=destination.consent_purpose,
            supported=cls.operations,
        )
    except domain.ContractViolation as error:
        errors.setdefault("fields", []).append(str(error))
    if destination.pii_mode not in cls.pii_modes:
        errors.setdefault("pii_mode", []).append(f"{cls.label} takes PII only as {', '.join(sorted(cls.pii_modes))}")
    if destination.rate_limit_per_second <= 0:
        errors.setdefault("rate_limit_per_second", []).append("must be above 0")
    if destination.batch_size < 1:
        errors.setdefault("batch_size", []).append("must be at least 1")
    if not isinstance(destination.settings, dict):
        errors.setdefault("settings", []).append("must be a JSON object")
    if errors:
        raise DestinationInvalid(errors)


@transaction.atomic
def destination_save(
    *, destination: Destination | None = None, secrets: dict | None = None, actor: str = "", **values
) -> Destination:
    """Create or change a destination. `secrets` are merged into the stored ones (an empty value
    keeps the stored secret, so forms never need to show them); they are encrypted at rest.

    The audit log gets what changed: field names and secret names, never values."""
    destination = destination or Destination()
    is_new = destination.pk is None
    attnames = {name: Destination._meta.get_field(name).attname for name in values}
    # Read from the database: a form's instance already holds the new values.
    before = {} if is_new else Destination.objects.filter(pk=destination.pk).values(*attnames.values()).first() or {}
    for name, value in values.items():
        setattr(destination, name, value)
    secrets_changed = []
    if secrets:
        stored = destination.secret_values if destination.secrets else {}
        changed = {name: value for name, value in secrets.items() if value not in (None, "")}
        secrets_changed = sorted(name for name, value in changed.items() if stored.get(name) != value)
        if secrets_changed:
            destination.secrets_rotated_at = timezone.now() if destination.pk else None
        stored.update(changed)
        destination.secrets = json.dumps(stored)
    destination_validate(destination)
    destination.save()
    _audit_save(
        destination, is_new=is_new, before=before, attnames=attnames, secrets_changed=secrets_changed, actor=actor
    )
    return destination


def _audit_save(
    destination: Destination, *, is_new: bool, before: dict, attnames: dict, secrets_changed: list, actor: str
) -> None:
    """Names of what changed, never values: a secret's value must not reach the log."""
    if not actor:
        actor = f"user:{destination.owner.get_username()}" if is_new and destination.owner_id else UNATTRIBUTED
    if is_new:
        audit_record(
            actor=actor,
            action="destination.create",
            target=destination,
            summary=f"Created destination {destination.slug} ({destination.kind})",
            fields=sorted(attnames),
            secrets=secrets_changed,
        )
        return
    fields = sorted(name for name, attname in attnames.items() if before.get(attname) != getattr(destination, attname))
    if fields:
        audit_record(
            actor=actor,
            action="destination.change",
            target=destination,
            summary=f"Changed destination {destination.slug}: {', '.join(fields)}"[:300],
            fields=fields,
        )
    if secrets_changed:
        audit_record(
            actor=actor,
            action="destination.secrets",
            target=destination,
            summary=f"Changed secrets of destination {destination.slug}: {', '.join(secrets_changed)}"[:300],
            secrets=secrets_changed,
        )


def destination_test(destination: Destination, *, actor: str = "") -> tuple[bool, str]:
    """One harmless authenticated request; the outcome is stored on the destination (and logged)."""
    connector = connector_for(destination)
    problems = connector.check_configuration()
    if problems:
        ok, message = False, "; ".join(problems)
    else:
        try:
            request = connector.test_request()
            with client_for(connector) as client:
                response = connector.deliver(client, request, destination.timeout_seconds)
        except ConnectorError as error:
            ok, message = False, str(error)
        except httpx.HTTPError as error:
            ok, message = False, f"could not reach {connector.base_url or 'the destination'}: {type(error).__name__}"
        else:
            ok = connector.is_success(response)
            message = f"HTTP {response.status_code}: connection works" if ok else excerpt(response, 300)
    Destination.objects.filter(pk=destination.pk).update(
        last_tested_at=timezone.now(), last_test_ok=ok, last_test_message=message[:500]
    )
    destination.refresh_from_db()
    audit_record(
        actor=actor or UNATTRIBUTED,
        action="destination.test",
        target=destination,
        summary=f"Tested the connection of destination {destination.slug}: {'passed' if ok else 'failed'}",
        ok=ok,
    )
    return ok, message
