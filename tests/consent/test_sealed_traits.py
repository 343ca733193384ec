"""Personal traits sealed at rest (consent/sealing.py): traits and trait values hold tokens only, the
vault holds the values encrypted, and everything that shows, sends, searches or segments on them
still works: pages and API (masked, revealed), activations (cleartext or hashed), search by name,
segment conditions (whole values, any case), deletion (shared values survive), key rotation."""

import hashlib
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from activations.models import Destination
from consent import sealing, vault
from consent.models import SealedValue
from identity.selectors import identifier_find
from profiles.models import Profile, RawEvent, TraitValue
from profiles.processing import raw_events_process
from profiles.selectors import profile_search
from profiles.sources import source_create
from segments.reference import load_profile_data, reference_matches
from segments.selectors import segment_audience
from segments.services import segment_validate
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada.trait@example.com", "birthday": "1815-12-10"}
GRACE = {"first_name": "Grace", "last_name": "Hopper", "email": "grace.trait@example.com"}


def column_text(model) -> str:
    """Every stored value of a table as the database returns it (JSON as text)."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
        return json.dumps([list(map(str, row)) for row in cursor.fetchall()])


@pytest.fixture
def people(send):
    send(event("profile.identified", ids=[("email", "ada@example.com")], traits={**ADA, "plan": "gold", "vip": True}))
    send(event("profile.identified", ids=[("email", "grace@example.com")], traits={**GRACE, "plan": "silver"}))
    raw_events_process()
    ada = identifier_find(type_slug="email", raw_value="ada@example.com").profile
    grace = identifier_find(type_slug="email", raw_value="grace@example.com").profile
    return ada, grace


def test_traits_and_trait_values_hold_tokens_and_the_vault_holds_ciphertext(people):
    ada, _grace = people
    stored = ada.traits
    assert stored["plan"] == "gold" and stored["vip"] is True  # not personal: as sent
    for key in ("first_name", "last_name", "email", "birthday", "birth_month"):
        assert sealing.is_token(stored[key]), key
    assert stored["first_name"] == sealing.token_for("ADA ")  # canonical: trimmed, any case
    tables = column_text(Profile) + column_text(TraitValue) + column_text(SealedValue)
    for value in ("Ada", "Lovelace", "ada.trait@example.com", "1815-12-10", "Grace", "Hopper"):
        assert value not in tables, value
    assert TraitValue.objects.filter(profile=ada, key="first_name").get().value == stored["first_name"]
    # The vault decrypts to the value, with its type.
    ciphertext = SealedValue.objects.get(token=stored["first_name"]).ciphertext
    assert json.loads(vault.decrypt(ciphertext)) == "Ada"
    assert ada.clear_traits == {**ADA, "birth_month": 12, "plan": "gold", "vip": True}
    assert ada.display_name == "Ada Lovelace"


def test_a_value_is_stored_once_and_encrypted_once(send, people):
    before = SealedValue.objects.count()
    send(event("profile.identified", ids=[("email", "ada@example.com")], traits={"first_name": "ada"}))
    raw_events_process()
    assert SealedValue.objects.count() == before  # same canonical value: the same token, nothing new


def test_profile_pages_mask_names_and_reveal_shows_them(client, make_user, people):
    ada, _grace = people
    client.force_login(make_user("marketer"))
    html = client.get(reverse("profiles:profile_detail", args=[ada.pk])).content.decode()
    assert "pii:" not in html and "Lovelace" not in html and "A. L." in html
    listing = client.get(reverse("profiles:profile_list")).content.decode()
    assert "pii:" not in listing and "A. L." in listing and "G. H." in listing

    client.force_login(make_user("guest_services"))
    revealed = client.post(reverse("profile_reveal", args=[ada.pk])).content.decode()
    assert "Lovelace" in revealed and "ada.trait@example.com" in revealed


def test_api_shows_masked_values_then_cleartext_on_reveal(api, people):
    ada, _grace = people
    masked = api("marketer").get(reverse("profile-detail", args=[ada.pk])).json()
    assert masked["traits"]["first_name"]["value"] == "A." and masked["display_name"] == "A. L."
    assert masked["traits"]["plan"]["value"] == "gold"
    revealed = api("guest_services").get(reverse("profile-detail", args=[ada.pk]), {"reveal": "1"}).json()
    assert revealed["traits"]["last_name"]["value"] == "Lovelace"
    assert revealed["traits"]["birth_month"]["value"] == 12
    listing = api("marketer").get(reverse("profile-list")).json()
    assert "pii:" not in json.dumps(listing)


def test_search_by_name_matches_whole_words_in_any_case(people):
    ada, grace = people
    assert list(profile_search(query="ada")) == [ada]
    assert list(profile_search(query="LOVELACE ada")) == [ada]
    assert list(profile_search(query="Grace Hopper")) == [grace]
    assert list(profile_search(query="Ad")) == []  # sealed: whole words only


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"trait": "first_name", "op": "eq", "value": "ada"}, {"ada"}),
        ({"trait": "first_name", "op": "neq", "value": "Ada"}, {"grace"}),
        ({"trait": "email", "op": "in", "value": ["GRACE.trait@example.com", "nobody@example.com"]}, {"grace"}),
        ({"trait": "birthday", "op": "exists", "value": True}, {"ada"}),
        ({"trait": "birth_month", "op": "eq", "value": 12}, {"ada"}),
        ({"trait": "plan", "op": "contains", "value": "sil"}, {"grace"}),  # not personal: every operator
    ],
)
def test_segment_conditions_on_sealed_traits_agree_with_the_reference(people, condition, expected):
    ada, grace = people
    names = {ada.pk: "ada", grace.pk: "grace"}
    definition = {"all": [condition]}
    assert segment_validate(definition=definition, slug=None) == []
    members = {names[pk] for pk in segment_audience(definition=definition).values_list("pk", flat=True)}
    assert members == expected
    now = timezone.now()
    for profile in (ada, grace):
        found = reference_matches(load_profile_data(profile), definition, now=now, resolve_segment=lambda slug: None)
        assert found == (names[profile.pk] in expected)


def test_text_operators_on_a_sealed_trait_are_refused_with_the_reason():
    errors = segment_validate(
        definition={"all": [{"trait": "last_name", "op": "contains", "value": "love"}]}, slug=None
    )
    assert [error.message for error in errors] == [
        "The trait 'last_name' is personal data, encrypted at rest: compare whole values with "
        "eq, neq, in, exists (any letter case), not 'contains'."
    ]


def test_activations_get_the_value_or_its_hash(people):
    from activations.mapping import contract_plan, payloads_for

    ada, _grace = people
    destination = Destination.objects.create(
        name="CRM",
        slug="crm",
        kind=Destination.WEBHOOK,
        fields=[
            {"name": "first_name", "source": "trait:first_name"},
            {"name": "email", "source": "trait:email"},
            {"name": "plan", "source": "trait:plan"},
        ],
        idempotency_key="email",
        operations=["upsert"],
    )
    plan = contract_plan(destination)
    clear = payloads_for(plan, [ada.pk], hashed=False)[ada.pk]
    assert clear == {"first_name": "Ada", "email": "ada.trait@example.com", "plan": "gold"}
    hashed = payloads_for(plan, [ada.pk], hashed=True)[ada.pk]
    assert hashed["email"] == hashlib.sha256(b"ada.trait@example.com").hexdigest()
    assert hashed["first_name"] == hashlib.sha256(b"ada").hexdigest() and hashed["plan"] == "gold"


def test_tracking_identify_traits_are_sealed_under_their_snake_case_keys(db):
    source, _credentials = source_create(name="Web", kind="tracking", slug="web-sealed")
    RawEvent.objects.create(
        source=source,
        external_id="msg-sealed-1",
        topic="identify",
        received_at=timezone.now(),
        payload={
            "type": "identify",
            "messageId": "msg-sealed-1",
            "userId": "u-77",
            "timestamp": "2026-01-01T10:00:00Z",
            "receivedAt": "2026-01-01T10:00:01Z",  # the tracking API stamps it on arrival
            "traits": {"firstName": "Katherine", "email": "kj@example.com", "plan": "gold"},
        },
    )
    raw_events_process()
    profile = identifier_find(type_slug="user_id", raw_value="u-77").profile
    assert sealing.is_token(profile.traits["first_name"]) and sealing.is_token(profile.traits["email"])
    assert profile.clear_traits["first_name"] == "Katherine" and profile.traits["plan"] == "gold"


def test_deletion_forgets_the_persons_values_but_keeps_a_name_someone_else_holds(send, people):
    from consent.requests import privacy_request_create, privacy_request_run

    ada, grace = people
    send(event("profile.identified", ids=[("email", "other.ada@example.com")], traits={"first_name": "Ada"}))
    raw_events_process()
    other = identifier_find(type_slug="email", raw_value="other.ada@example.com").profile
    lovelace = ada.traits["last_name"]

    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers="email:ada@example.com", actor="user:po", enqueue=False
    )
    request = privacy_request_run(request_id=request.pk)
    assert request.status == "completed", request.error
    assert not SealedValue.objects.filter(token=lovelace).exists()
    assert not SealedValue.objects.filter(token=sealing.token_for("ada.trait@example.com")).exists()
    assert request.steps.get(name="purge_traits").detail["sealed_values_forgotten"] >= 4
    other.refresh_from_db()
    grace.refresh_from_db()
    assert other.clear_traits["first_name"] == "Ada"  # the other Ada keeps her name
    assert grace.clear_traits["last_name"] == "Hopper"


def test_rotation_re_encrypts_the_vault(db, capsys):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(PII_ENCRYPTION_KEYS=[key_a]):
        SealedValue.objects.all().delete()
        sealing.vault_store({sealing.token_for("Ada"): "Ada"})
    with override_settings(PII_ENCRYPTION_KEYS=[key_b, key_a]):
        call_command("rotate_pii_keys")
        assert "consent.SealedValue.ciphertext: 1 scanned, 1 re-encrypted" in capsys.readouterr().out
    with override_settings(PII_ENCRYPTION_KEYS=[key_b]):
        assert sealing.unseal_values([sealing.token_for("ada")]) == {sealing.token_for("ada"): "Ada"}


def test_traits_stored_before_sealing_are_sealed_in_place(people):
    ada, _grace = people
    Profile.objects.filter(pk=ada.pk).update(traits={"first_name": "Ada", "plan": "gold"})
    row = TraitValue.objects.filter(profile=ada, key="first_name").get()
    TraitValue.objects.filter(pk=row.pk).update(value="Ada")
    SealedValue.objects.all().delete()

    counts = sealing.seal_stored_traits(Profile=Profile, TraitValue=TraitValue, SealedValue=SealedValue)
    assert counts["profiles"] >= 1 and counts["trait_values"] >= 1
    ada.refresh_from_db()
    assert sealing.is_token(ada.traits["first_name"]) and ada.traits["plan"] == "gold"
    assert ada.clear_traits["first_name"] == "Ada"
    assert TraitValue.objects.get(pk=row.pk).value == ada.traits["first_name"]
    again = sealing.seal_stored_traits(Profile=Profile, TraitValue=TraitValue, SealedValue=SealedValue)
    assert again == {"profiles": 0, "trait_values": 0}


def test_the_builder_menu_marks_personal_traits_and_reads_typed_numbers_as_numbers(people):
    from segments.builder import coerce_comparison_value
    from segments.catalog import TraitInfo, trait_catalog

    catalog = {trait.key: trait for trait in trait_catalog()}
    assert catalog["first_name"] == TraitInfo("first_name", ("personal",), 2)
    assert catalog["plan"].kinds == ("string",)
    assert coerce_comparison_value("12", "eq", "personal") == 12
