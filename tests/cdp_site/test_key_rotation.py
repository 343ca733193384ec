"""rotate_pii_keys: every encrypted column is found, re-encrypted under the newest key in batches,
values already under it are left alone, a dry run writes nothing, and after the old key is
removed everything still decrypts and search by email still finds the person (blind indexes use
their own key)."""

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from activations.models import Destination
from cdp_site.management.commands.rotate_pii_keys import encrypted_columns
from consent import vault
from identity.models import Identifier
from profiles.models import RawEvent, Source
from profiles.processing import raw_events_process
from profiles.selectors import profile_search
from profiles.sources import signing_secrets, source_create

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))
WEBHOOK_SECRET = "whsec_rotation_test_secret"


def raw_column(model, field_name) -> list[str]:
    """The stored (encrypted) values of a column, by primary key."""
    quote = connection.ops.quote_name
    column = model._meta.get_field(field_name).column
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(column)} FROM {quote(model._meta.db_table)} WHERE {quote(column)} <> '' ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def stored_tokens() -> list[str]:
    return [
        *raw_column(Identifier, "encrypted_value"),
        *raw_column(Source, "signing_secrets"),
        *raw_column(Destination, "secrets"),
    ]


def under(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except Exception:
        return False
    return True


@pytest.fixture
def people(send):
    """Two people with email and phone, a webhook source and a destination, all under key A."""
    with override_settings(PII_ENCRYPTION_KEYS=[KEY_A]):
        for email, phone in (("ana@example.com", "+12025550101"), ("ben@example.com", "+12025550102")):
            send(
                {
                    "type": "profile.identified",
                    "at": "2026-01-01T10:00:00+00:00",
                    "ids": [["email", email], ["phone", phone]],
                }
            )
        raw_events_process()
        assert RawEvent.objects.filter(status=RawEvent.PROCESSED).count() == 2
        source_create(name="Stripe", kind="stripe", signing_secret=WEBHOOK_SECRET)
        Destination.objects.create(
            name="Hook",
            slug="hook",
            kind=Destination.WEBHOOK,
            secrets=json.dumps({"signing_secret": "whsec_destination"}),
            fields=[],
            idempotency_key="email",
            operations=["upsert"],
        )
    tokens = stored_tokens()
    assert len(tokens) == 4 + 1 + 1 and all(under(KEY_A, token) for token in tokens)
    return tokens


def rotate(*args, capsys) -> str:
    call_command("rotate_pii_keys", *args)
    return capsys.readouterr().out


def test_every_encrypted_column_is_found():
    labels = {f"{model._meta.label}.{field.name}" for model, field in encrypted_columns()}
    assert {
        "identity.Identifier.encrypted_value",
        "profiles.Source.signing_secrets",
        "activations.Destination.secrets",
        "activations.SyncRecord.key",
        "activations.SyncRecord.payload",
        "activations.SyncState.key",
        "activations.TriggerSend.payload",
    } <= labels
    # Found by type, so models added later (privacy requests, ...) are covered with no change here.
    assert "identity.Identifier.value" not in labels and "profiles.RawEvent.payload" not in labels


def test_rotate_then_drop_the_old_key(people, capsys):
    with override_settings(PII_ENCRYPTION_KEYS=[KEY_B, KEY_A]):
        out = rotate("--batch-size", "1", capsys=capsys)
        assert "identity.Identifier.encrypted_value: 4 scanned, 4 re-encrypted" in out  # progress per batch
        assert "Total re-encrypted: 6." in out
        again = rotate(capsys=capsys)
        assert "Total re-encrypted: 0." in again  # already under the newest key: left alone

    tokens = stored_tokens()
    assert all(under(KEY_B, token) and not under(KEY_A, token) for token in tokens)
    assert not set(tokens) & set(people)

    with override_settings(PII_ENCRYPTION_KEYS=[KEY_B]):
        emails = {identifier.display_value for identifier in Identifier.objects.filter(identifier_type__slug="email")}
        assert emails == {"ana@example.com", "ben@example.com"}
        assert signing_secrets(Source.objects.get(slug="stripe")) == [WEBHOOK_SECRET]
        assert Destination.objects.get(slug="hook").secret_values == {"signing_secret": "whsec_destination"}
        found = list(profile_search(query="Ana@Example.com"))
        ana = Identifier.objects.get(lookup_hash=vault.blind_index("email", "ana@example.com"))
        assert [profile.pk for profile in found] == [ana.profile_id]


def test_dry_run_writes_nothing(people, capsys):
    with override_settings(PII_ENCRYPTION_KEYS=[KEY_B, KEY_A]):
        out = rotate("--dry-run", capsys=capsys)
    assert "Dry run: nothing is written." in out and "Total would re-encrypt: 6." in out
    assert stored_tokens() == people


def test_values_no_key_decrypts_are_reported_and_the_rest_rotated(people, capsys):
    with override_settings(PII_ENCRYPTION_KEYS=[KEY_C]):
        Destination.objects.filter(slug="hook").update(secrets=json.dumps({"token": "under C"}))
    with override_settings(PII_ENCRYPTION_KEYS=[KEY_B, KEY_A]):
        with pytest.raises(CommandError, match=r"activations.Destination.secrets: 1 \(ids \[\d+\]\)"):
            rotate(capsys=capsys)
        out = capsys.readouterr().out
    assert "Total re-encrypted: 5." in out
    assert all(under(KEY_B, token) for token in stored_tokens()[:5])


def test_no_key_configured_is_refused():
    with override_settings(PII_ENCRYPTION_KEYS=[]), pytest.raises(CommandError, match="empty"):
        call_command("rotate_pii_keys")
