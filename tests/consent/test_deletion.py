"""Deletion requests end to end: one person seeded through every source (tracking, Stripe, Shopify,
Mindbody, a CSV import), synced and messaged through a live destination, then deleted. Afterwards
no table and no column holds their email, phone or name in any form that decodes, the destination
was told to delete them, and later events of theirs are acknowledged but create nothing."""

import base64
import binascii
import hashlib
import json
import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from activations.local_destination import LocalDestination
from activations.models import SyncRecord, Trigger, TriggerSend
from activations.syncs import sync_run_execute, sync_run_start
from activations.triggers import trigger_save
from consent import vault
from consent.models import ConsentRecord, PrivacyRequest, PrivacyRequestStep, Tombstone
from consent.requests import privacy_request_create, privacy_request_retry, privacy_request_run
from consent.tombstones import tombstone_hash
from identity.models import Identifier, Merge
from identity.selectors import identifier_find
from profiles.csv_import import csv_import_create, csv_import_run
from profiles.mappers import csv_rows
from profiles.models import Event, Profile, RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create
from tests.activations import conftest as activation_fixtures
from tests.activations.conftest import bodies
from tests.profiles.webhooks.senders import fixture, mindbody_headers, shopify_headers, stripe_headers

pytestmark = pytest.mark.django_db

# The activation tests' fixtures: people through the real pipeline, audiences, live destinations.
ingest = activation_fixtures.ingest
audience = activation_fixtures.audience
make_sync = activation_fixtures.make_sync
webhook_destination = activation_fixtures.webhook_destination

EMAIL_AS_TYPED = "Oriel.Vantongeren@Example.org"
EMAIL = "oriel.vantongeren@example.org"
STUDIO_EMAIL = "oriel.v@studio-mail.example"
PHONE = "+14155550199"
PHONE_TYPED = ["(415) 555-0199", "+1 415 555 0199", "415-555-0199", "415.555.0199", "4155550199"]
FIRST, LAST = "Oriel", "Vantongeren"
NAME = f"{FIRST} {LAST}"
USER_ID = "u-oriel-7781"
CSV_FILE = "name,email,phone,plan\nBea Keep,bea.keep@example.org,,silver\n{name},{email},{phone},gold\n"


@pytest.fixture(autouse=True)
def fresh_caches(settings, tmp_path):
    cache.clear()
    csv_rows._mapping.cache_clear()
    settings.PRIVACY_EXPORT_DIR = tmp_path / "access"
    yield


# -- what "decodes to the person" means ---------------------------------------------------------

NEEDLES = sorted(
    {
        EMAIL,
        STUDIO_EMAIL,
        PHONE,
        "4155550199",
        *(typed.lower() for typed in PHONE_TYPED),
        FIRST.lower(),
        LAST.lower(),
        NAME.lower(),
        USER_ID,
    }
)
# Unkeyed hashes a guess confirms, and the blind index (keyed, but it must not outlive the person).
HASHES = sorted(
    {
        hashlib.md5(f"key|{EMAIL}".encode()).hexdigest(),  # noqa: S324 - what activations fingerprints keys with
        hashlib.sha256(EMAIL.encode()).hexdigest(),
        hashlib.sha256(PHONE.encode()).hexdigest(),
        hashlib.sha256(PHONE.lstrip("+").encode()).hexdigest(),
        hashlib.md5(EMAIL.encode()).hexdigest(),  # noqa: S324
        vault.blind_index("email", EMAIL),
        vault.blind_index("email", STUDIO_EMAIL),
        vault.blind_index("phone", PHONE),
    }
)
FERNET = re.compile(r"gAAAAA[A-Za-z0-9_\-]+=*")
BASE64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")


def _strings(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _plain(text: str) -> str | None:
    lowered = text.lower()
    for needle in NEEDLES:
        if needle in lowered:
            return f"contains {needle!r}"
    for digest in HASHES:
        if digest in lowered:
            return "contains a hash of an identifier"
    if len(text) <= 40 and "4155550199" in re.sub(r"\D", "", text):
        return "contains the phone number's digits"
    return None


def decodes_to_person(value, depth: int = 0) -> str | None:
    """Why this column value is the person (plain text in any case, JSON, a Fernet token, base64,
    a hash of an identifier), or None."""
    if value is None or isinstance(value, bool | int | float | Decimal) or depth > 3:
        return None
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return decodes_to_person(value.decode("utf-8", "ignore"), depth + 1) or decodes_to_person(
            value.decode("latin-1"), depth + 1
        )
    if isinstance(value, dict | list):
        texts = [json.dumps(value, ensure_ascii=False), *_strings(value)]
    elif isinstance(value, str):
        texts = [value]
        try:
            texts += list(_strings(json.loads(value)))
        except (ValueError, TypeError):
            pass
    else:
        return None
    for text in texts:
        reason = _plain(text)
        if reason:
            return reason
        for token in FERNET.findall(text):
            try:
                clear = vault.decrypt(token)
            except ValueError:
                continue
            reason = decodes_to_person(clear, depth + 1)
            if reason:
                return f"Fernet token that {reason}"
        for token in BASE64.findall(text):
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    raw = decode(token + "=" * (-len(token) % 4))
                except (binascii.Error, ValueError):
                    continue
                reason = _plain(raw.decode("latin-1"))
                if reason:
                    return f"base64 that {reason}"
    return None


def scan_database() -> list[str]:
    """Every table, every column, every row."""
    hits = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            cursor.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}")
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    reason = decodes_to_person(value)
                    if reason:
                        hits.append(f"{table}.{column}: {reason}")
    return hits


def test_the_scanner_finds_every_encoding():
    token = vault.encrypt(json.dumps({"to": EMAIL}))
    assert decodes_to_person("hello ORIEL") == "contains 'oriel'"
    assert decodes_to_person({"payload": token}).startswith("Fernet token")
    assert decodes_to_person(base64.b64encode(b"call +14155550199").decode()).startswith("base64")
    assert decodes_to_person("(415) 555 01 99") == "contains the phone number's digits"
    assert decodes_to_person(hashlib.sha256(EMAIL.encode()).hexdigest()) == "contains a hash of an identifier"
    assert decodes_to_person(tombstone_hash("email", EMAIL)) is None  # keyed: allowed to stay
    assert decodes_to_person({"who": "someone else"}) is None


# -- seeding one person across every source ---------------------------------------------------------


def _basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


class Senders:
    def __init__(self, client, tmp_path):
        self.client, self.tmp_path = client, tmp_path
        self.tracking_key = source_create(name="Web", kind="tracking", slug="web")[1].write_key
        source_create(name="Stripe", kind="stripe", slug="stripe", signing_secret="whsec_s")
        source_create(name="Shop", kind="shopify", slug="shop", signing_secret="shpss")
        source_create(name="Studio", kind="mindbody", slug="studio", signing_secret="mbkey")
        self.csv_source = source_create(name="Backfill", kind="csv", slug="backfill")[0]
        self._ids = iter(range(1, 1000))

    def tracking(self, call: str, message: dict):
        message = {"messageId": f"msg-{next(self._ids)}", **message}
        response = self.client.post(
            f"/v1/{call}",
            data=json.dumps(message),
            content_type="application/json",
            HTTP_AUTHORIZATION=_basic(self.tracking_key),
        )
        assert response.status_code == 200, response.content
        return response

    def webhook(self, slug: str, payload: dict, headers_for):
        body = json.dumps(payload).encode()
        response = self.client.post(
            f"/webhooks/{slug}/", data=body, content_type="application/json", **headers_for(body)
        )
        assert response.status_code == 200, response.content
        return response

    def stripe(self, payload):
        return self.webhook("stripe", payload, lambda body: stripe_headers(body, "whsec_s"))

    def shopify(self, payload, topic):
        event_id = f"shop-{next(self._ids)}"
        return self.webhook(
            "shop", payload, lambda body: shopify_headers(body, "shpss", topic=topic, event_id=event_id)
        )

    def mindbody(self, payload):
        return self.webhook("studio", payload, lambda body: mindbody_headers(body, "mbkey"))

    def csv(self, text: str):
        path = self.tmp_path / "members.csv"
        path.write_text(text, encoding="utf-8")
        spec = {
            "columns": {
                "name": "trait:name",
                "email": "identifier:email",
                "phone": "identifier:phone",
                "plan": "trait:plan",
            },
            "event_type": "customer.imported",
            "timezone": "UTC",
        }
        csv_import = csv_import_create(source=self.csv_source, path=path, file_name="members.csv", spec=spec)
        csv_import_run(csv_import=csv_import)
        return path


def stripe_customer(event_id="evt_oriel_customer", email=EMAIL_AS_TYPED):
    payload = fixture("stripe_customer_created")
    payload["id"] = event_id
    payload["data"]["object"].update(
        id="cus_OrielVtg0199", email=email, name=NAME, phone=None, description=f"{NAME} (studio member)"
    )
    return payload


def stripe_payment():
    payload = fixture("stripe_payment_intent_succeeded")
    payload["id"] = "evt_oriel_payment"
    payload["data"]["object"].update(customer="cus_OrielVtg0199", receipt_email=EMAIL, description="Pack for Oriel")
    return payload


def shopify_customer():
    payload = fixture("shopify_customers_create")
    payload.update(
        id=880001, email=EMAIL_AS_TYPED, first_name=FIRST, last_name=LAST, phone=PHONE, note=f"Call {NAME} first"
    )
    payload["default_address"].update(customer_id=880001, name=NAME, phone="415-555-0199")
    return payload


def shopify_order():
    payload = fixture("shopify_orders_paid")
    payload.update(id=990001, email=EMAIL, contact_email=EMAIL, phone=PHONE)
    payload["billing_address"].update(first_name=FIRST, last_name=LAST)
    payload["customer"].update(id=880001, email=EMAIL, first_name=FIRST, last_name=LAST)
    return payload


def mindbody_client():
    payload = fixture("mindbody_client_created")
    payload["messageId"] = "mb-oriel-1"
    payload["eventData"].update(
        clientId="77001",
        clientUniqueId=77001,
        firstName=FIRST,
        lastName=LAST,
        email=STUDIO_EMAIL,
        mobilePhone="(415) 555-0199",
        notes=f"{FIRST} prefers mornings",
    )
    return payload


def identify(email=EMAIL_AS_TYPED, **traits):
    return {
        "userId": USER_ID,
        "anonymousId": "anon-device-5c1f0e2a",
        "traits": {
            "email": email,
            "phone": "+1 415 555 0199",
            "firstName": FIRST,
            "lastName": LAST,
            "name": NAME,
            "plan": "gold",
            **traits,
        },
        "context": {"consent": {"categoryPreferences": {"email": True}}},
    }


def order_completed():
    return {
        "userId": USER_ID,
        "event": "Order Completed",
        "properties": {"order_id": "T-100", "total": 120, "currency": "EUR", "gift_note": f"for {NAME}"},
        "context": {"traits": {"email": EMAIL}},
    }


def seed_person(senders: Senders, capture_on_commit, destination, audience, make_sync) -> dict:
    """Everything the platform can hold about Oriel, plus Bea, who must survive the deletion."""
    # Two profiles first (Stripe knows the email, the studio a second email and the phone), joined
    # by the tracking identify that names them both: a merge to follow.
    senders.stripe(stripe_customer())
    senders.mindbody(mindbody_client())
    raw_events_process()
    assert Profile.objects.filter(status="active").count() == 2
    senders.tracking("identify", identify())
    senders.tracking("identify", {"userId": "u-bea", "traits": {"email": "bea.keep@example.org", "name": "Bea Keep"}})
    senders.stripe(stripe_payment())
    senders.shopify(shopify_customer(), "customers/create")
    senders.shopify(shopify_order(), "orders/paid")
    csv_path = senders.csv(CSV_FILE.format(name=NAME, email=EMAIL_AS_TYPED, phone="415 555 0199"))
    raw_events_process()
    assert not RawEvent.objects.exclude(status="processed").exists()
    assert Merge.objects.exists()

    oriel = identifier_find(type_slug="email", raw_value=EMAIL).profile
    assert identifier_find(type_slug="mindbody_client_id", raw_value="123:77001").profile == oriel
    assert identifier_find(type_slug="shopify_customer_id", raw_value="880001").profile == oriel
    assert identifier_find(type_slug="stripe_customer_id", raw_value="cus_OrielVtg0199").profile == oriel
    assert oriel.traits["plan"] == "gold" and oriel.consent["email_marketing"]["is_granted"] is True

    # A sync sends them to the destination; an event trigger messages them.
    segment = audience()
    sync = make_sync(segment, destination)
    run = sync_run_execute(sync_run_start(sync=sync, triggered_by="test", enqueue=False).pk)
    assert run.status == "completed" and run.applied == 1, run.error
    trigger_save(
        name="Thanks",
        slug="thanks",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "order.thanks", "to": "{email}", "text": "Thanks {first_name}"},
        cap_window_hours=0,
    )
    senders.tracking("track", order_completed())
    with capture_on_commit(execute=True):
        raw_events_process()
    send = TriggerSend.objects.get(profile_id=oriel.pk)
    assert send.status == "sent", send.error
    return {"profile": oriel, "sync": sync, "csv_path": csv_path}


# -- the test ----------------------------------------------------------------------------------------


def test_deleting_a_person_seeded_across_every_source_leaves_nothing_that_decodes(
    client, tmp_path, django_capture_on_commit_callbacks, webhook_destination, make_sync, audience
):
    with LocalDestination() as server:
        senders = Senders(client, tmp_path)
        destination = webhook_destination(server.url)
        seeded = seed_person(senders, django_capture_on_commit_callbacks, destination, audience, make_sync)
        oriel = seeded["profile"]
        bea = identifier_find(type_slug="email", raw_value="bea.keep@example.org").profile
        events_before = Event.objects.count()

        before = scan_database()
        tables = {hit.split(".")[0] for hit in before}
        # The scanner sees the person in every layer before the deletion. Their traits hold tokens
        # only (sealed: the values are in the vault, encrypted), so the scanner finds them there.
        assert {
            "profiles_rawevent",
            "profiles_event",
            "consent_sealedvalue",
            "identity_identifier",
            "identity_identitylink",
            "activations_syncrecord",
            "activations_syncstate",
            "activations_triggersend",
        } <= tables, tables
        assert not {"profiles_profile", "profiles_traitvalue"} & tables, before
        assert NAME in seeded["csv_path"].read_text()

        request = privacy_request_create(
            kind="deletion",
            regulation="gdpr",
            identifiers=f"email:{EMAIL_AS_TYPED}",
            actor="user:officer",
            enqueue=False,
        )
        request = privacy_request_run(request_id=request.pk)
        assert request.status == PrivacyRequest.COMPLETED, request.error

        # The destination was told to delete them, by key.
        deletes = [body for body in bodies(server) if body["type"] == "profile.deleted"]
        assert [body["data"]["key"] for body in deletes] == [EMAIL]

    # Nothing anywhere decodes to the person.
    assert scan_database() == []
    assert NAME not in seeded["csv_path"].read_text() and "bea.keep@example.org" in seeded["csv_path"].read_text()

    # Every step ran once, in order, and logged times and counts.
    steps = list(request.steps.values_list("name", "outcome"))
    assert [name for name, _ in steps] == [
        "find_profiles",
        "tombstones",
        "purge_profiles",
        "purge_identifiers",
        "purge_traits",
        "purge_events",
        "purge_files",
        "purge_raw_events",
        "purge_consent",
        "destinations",
        "purge_requests",
        "verify",
    ]
    assert {outcome for _, outcome in steps} == {"ok"}
    found = request.steps.get(name="find_profiles").detail["profiles"]
    assert found == 2 == len(request.profiles_found)  # the survivor and the profile merged into it
    assert oriel.pk in request.profiles_found
    destinations = request.steps.get(name="destinations").detail
    assert destinations["applied"] == 1 and destinations["outcomes"][0]["operation"] == "delete"
    assert request.steps.get(name="purge_files").detail["csv_rows"] == 1
    assert request.subject == "" and request.found_identifiers == ""
    assert request.subject_hashes == [{"type": "email", "hash": tombstone_hash("email", EMAIL)}]

    # Tombstones of every identifier of the person; none of Bea.
    assert Tombstone.objects.filter(key_hash=tombstone_hash("email", STUDIO_EMAIL)).exists()
    assert Tombstone.objects.filter(key_hash=tombstone_hash("phone", PHONE)).exists()
    assert Tombstone.objects.filter(key_hash=tombstone_hash("user_id", USER_ID)).exists()
    assert not Tombstone.objects.filter(key_hash=tombstone_hash("email", "bea.keep@example.org")).exists()
    assert set(Profile.objects.filter(id__in=request.profiles_found).values_list("status", flat=True)) == {"deleted"}
    assert Event.objects.count() == events_before  # aggregates keep their rows: type, time, revenue
    assert Event.objects.filter(profile_id=oriel.pk, revenue__isnull=False).exists()
    assert not ConsentRecord.objects.filter(profile_id=oriel.pk).exclude(evidence={}).exists()

    # Bea is untouched.
    bea.refresh_from_db()
    assert bea.status == "active" and bea.clear_traits["name"] == "Bea Keep"
    assert identifier_find(type_slug="email", raw_value="bea.keep@example.org") is not None

    # Audited without PII.
    from cdp_site.models import AuditEntry

    actions = set(AuditEntry.objects.filter(target_id=str(request.pk)).values_list("action", flat=True))
    assert {"privacy.deletion_request", "privacy.deletion_completed"} <= actions


def test_later_events_of_a_deleted_person_are_acknowledged_but_create_nothing(client, tmp_path, make_user):
    senders = Senders(client, tmp_path)
    senders.tracking("identify", identify())
    raw_events_process()
    request = privacy_request_create(
        kind="deletion", regulation="ccpa", identifiers=[f"phone:{PHONE_TYPED[0]}"], actor="test", enqueue=False
    )
    assert privacy_request_run(request_id=request.pk).status == "completed"
    profiles, events, identifiers = Profile.objects.count(), Event.objects.count(), Identifier.objects.count()

    # They come back: tracking (another user id, same email) and a Stripe customer with their email.
    senders.tracking("identify", identify(userId="u-new-device"))
    senders.tracking("track", {**order_completed(), "userId": "u-other"})
    senders.stripe(stripe_customer(event_id="evt_again", email=EMAIL))
    result = raw_events_process()

    assert result.dropped == 3 and result.processed == 0
    assert (Profile.objects.count(), Event.objects.count(), Identifier.objects.count()) == (
        profiles,
        events,
        identifiers,
    )
    dropped = RawEvent.objects.filter(status=RawEvent.DROPPED)
    assert dropped.count() == 3
    assert set(dropped.values_list("source__slug", flat=True)) == {"web", "stripe"}
    assert all(raw.payload == {} and raw.headers == {} for raw in dropped)
    assert scan_database() == []
    # Counted per source, on the source's page.
    client.force_login(make_user("integration_engineer"))
    page = client.get("/sources/web/").content.decode()
    assert re.search(r"status=dropped\">dropped</a></td><td>2</td>", page)
    # A redelivery of the same webhook is still acknowledged (and stays a no-op).
    senders.stripe(stripe_customer(event_id="evt_again", email=EMAIL))
    assert RawEvent.objects.filter(external_id="evt_again").count() == 1


def test_an_event_mixing_a_tombstoned_and_a_new_identifier_is_dropped_whole(send):
    now = timezone.now().isoformat()
    send({"type": "profile.identified", "at": now, "ids": [["email", EMAIL]], "traits": {"name": NAME}})
    raw_events_process()
    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
    )
    privacy_request_run(request_id=request.pk)
    raw = send({"type": "page.viewed", "at": now, "ids": [["anonymous_id", "fresh-device-1"], ["email", EMAIL]]})
    other = send({"type": "profile.identified", "at": now, "ids": [["email", "someone@example.org"]]})
    raw_events_process()
    raw.refresh_from_db()
    other.refresh_from_db()
    assert (raw.status, raw.payload) == ("dropped", {})
    assert other.status == "processed"
    assert not Identifier.objects.filter(lookup_hash=vault.blind_index("anonymous_id", "fresh-device-1")).exists()


def test_a_failed_destination_fails_the_request_and_retry_resumes_there(
    ingest, audience, webhook_destination, make_sync
):
    from activations.local_destination import Reply

    ingest(email=EMAIL, traits={"plan": "gold", "first_name": FIRST}, consent={"email_marketing": True})
    answers = {"down": True}

    def responder(received):
        if received.json and received.json.get("type") == "profile.deleted" and answers["down"]:
            return Reply(400, {"error": "not today"})
        return Reply(200, {})

    with LocalDestination(responder) as server:
        sync = make_sync(audience(), webhook_destination(server.url, max_attempts=1))
        sync_run_execute(sync_run_start(sync=sync, triggered_by="test", enqueue=False).pk)
        request = privacy_request_create(
            kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
        )
        request = privacy_request_run(request_id=request.pk)
        assert request.status == "failed"
        assert request.error.startswith("destinations: 1 destination operations not applied")
        failed = request.steps.get(name="destinations")
        assert failed.outcome == "failed" and failed.detail["outcomes"][0]["ok"] is False
        assert request.subject != ""  # kept (encrypted) until the request completes
        # Running it again does nothing while it is failed; retry resumes at the failed step.
        assert privacy_request_run(request_id=request.pk).status == "failed"
        answers["down"] = False
        privacy_request_retry(request=request, actor="test", enqueue=False)
        request = privacy_request_run(request_id=request.pk)
        assert request.status == "completed", request.error
    names = list(request.steps.values_list("name", "outcome"))
    assert names.count(("tombstones", "ok")) == 1  # done once, not redone
    assert names[-4:] == [
        ("destinations", "failed"),
        ("destinations", "ok"),
        ("purge_requests", "ok"),
        ("verify", "ok"),
    ]
    assert [body["type"] for body in bodies(server)].count("profile.deleted") == 2
    assert SyncRecord.objects.filter(key_hash__gt="").count() == 0


def test_running_a_request_twice_does_the_work_once(ingest):
    ingest(email=EMAIL, traits={"name": NAME})
    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
    )
    privacy_request_run(request_id=request.pk)
    privacy_request_run(request_id=request.pk)
    assert PrivacyRequestStep.objects.filter(request=request).count() == 12
    # A second request for the same person finds nothing left and completes too.
    again = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
    )
    again = privacy_request_run(request_id=again.pk)
    assert again.status == "completed" and again.profiles_found == []


def test_verify_fails_the_request_when_something_is_left(ingest, monkeypatch):
    from consent import requests

    ingest(email=EMAIL, traits={"name": NAME}, properties={"note": f"welcome {FIRST}"})
    monkeypatch.setitem(requests.STEPS, "purge_events", lambda request: ("ok", {"events": 0}))
    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
    )
    request = privacy_request_run(request_id=request.pk)
    assert request.status == "failed" and request.error.startswith("verify:")
    assert "profiles_event" in request.steps.get(name="verify").detail["residue"]


def test_command_line(ingest, capsys):
    from django.core.management import call_command

    ingest(email=EMAIL, traits={"name": NAME})
    call_command("privacy_request", "delete", "--regulation", "ccpa", f"email:{EMAIL_AS_TYPED}")
    out = capsys.readouterr().out
    assert "verify" in out and ": completed" in out
    request = PrivacyRequest.objects.get()
    assert (request.kind, request.regulation, request.status) == ("deletion", "ccpa", "completed")


def test_link_evidence_is_scrubbed_and_links_waiting_for_review_are_rejected(ingest):
    from identity.models import IdentityLink

    ingest(email=EMAIL, traits={"name": NAME})
    ingest(email="bea.keep@example.org", traits={"name": "Bea Keep"})
    oriel = identifier_find(type_slug="email", raw_value=EMAIL)
    bea = identifier_find(type_slug="email", raw_value="bea.keep@example.org")
    low, high = sorted((oriel.pk, bea.pk))
    link = IdentityLink.objects.create(
        from_identifier_id=low,
        to_identifier_id=high,
        status=IdentityLink.PENDING_REVIEW,
        rule="probabilistic",
        evidence={"raw_event_id": 7, "external_id": f"signup-{EMAIL}", "score": 0.91, "source": "web"},
        review_note=f"looks like {NAME}",
        created_at=timezone.now(),
    )
    request = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"email:{EMAIL}"], actor="test", enqueue=False
    )
    request = privacy_request_run(request_id=request.pk)
    assert request.status == "completed", request.error
    link.refresh_from_db()
    assert link.status == IdentityLink.REJECTED and link.reviewed_by == "privacy_request"
    assert link.evidence == {"raw_event_id": 7, "external_id": "", "score": 0.91, "source": "web"}
    assert link.review_note == ""
    assert request.steps.get(name="purge_identifiers").detail["pending_links_rejected"] == 1
    assert identifier_find(type_slug="email", raw_value="bea.keep@example.org").display_value == "bea.keep@example.org"
