"""The handoff pack: built from the live configuration, the right files and columns, no personal data."""

import base64
import csv
import io
import json
import re
import zipfile
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activations.models import Destination, Trigger
from activations.triggers import trigger_save
from cdp_site import handoff
from cdp_site.handoff import (
    API_READINESS_COLUMNS,
    EVENT_MAPPING_COLUMNS,
    FILES,
    NOT_SEEN,
    PARTNER_MATRIX_COLUMNS,
    handoff_build,
    mask_payload,
)
from profiles.models import EventContract, RawEvent
from profiles.processing import raw_events_process
from profiles.sources import source_create
from segments.computed import computed_trait_create
from tests.profiles.webhooks.senders import fixture, shopify_headers

pytestmark = pytest.mark.django_db

SHOPIFY_SECRET = "shpss_handoff_secret"
# Everything personal the senders below send; none of it may appear in the pack.
PERSONAL = [
    "ada.lovelace@example.com",
    "+442079460958",
    "442079460958",
    "Lovelace",
    "12 Analytical Row",
    "Analytical",
    "N1 9GU",
    "203.0.113.9",
    "bob@biller.com",
    "Biller",
    "6135551111",
    "123-123-1234",
    "123 Elm St.",
    "K2H7A8",
    "198.51.100.7",
]
PERSONAL_WORDS = ["Ada", "Bob"]  # first names: matched as whole words


def basic(write_key):
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@pytest.fixture
def seeded(client, make_user, canonical_source, ingest, audience, webhook_destination, make_sync):
    """A tracking source and a Shopify source that sent personal data through the real endpoints, the
    canonical test source with traits, segments, a computed trait, syncs and a trigger."""
    cache.clear()
    owner = make_user("integration_engineer", username="olive")
    web, credentials = source_create(name="Web SDK", kind="tracking", owner=owner, slug="web-sdk")
    shop, _ = source_create(name="Shop", kind="shopify", signing_secret=SHOPIFY_SECRET, slug="shop")
    batch = {
        "batch": [
            {
                "type": "identify",
                "messageId": "m-1",
                "userId": "member-42",
                "traits": {
                    "email": "ada.lovelace@example.com",
                    "phone": "+442079460958",
                    "firstName": "Ada",
                    "lastName": "Lovelace",
                    "address": {"street": "12 Analytical Row", "city": "London", "postalCode": "N1 9GU"},
                },
                "context": {"ip": "203.0.113.9"},
            },
            {
                "type": "track",
                "messageId": "m-2",
                "userId": "member-42",
                "event": "Order Completed",
                "properties": {"order_id": "o-1", "total": 20, "currency": "GBP"},
                "context": {"ip": "203.0.113.9", "traits": {"email": "ada.lovelace@example.com"}},
            },
        ]
    }
    response = client.post(
        "/v1/batch", json.dumps(batch), content_type="application/json", HTTP_AUTHORIZATION=basic(credentials.write_key)
    )
    assert response.status_code == 200, response.content
    customer = fixture("shopify_customers_create")
    customer["client_details"] = {"browser_ip": "198.51.100.7"}
    body = json.dumps(customer).encode()
    response = client.post(
        f"/webhooks/{shop.slug}/",
        body,
        content_type="application/json",
        **shopify_headers(body, SHOPIFY_SECRET, topic="customers/create", event_id="e-1"),
    )
    assert response.status_code == 200, response.content
    raw_events_process()
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"processed"}
    ingest(email="cy@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})

    computed_trait_create(key="orders", name="Orders", kind="count", event_type="order.completed")
    buyers = audience({"all": [{"event": "order.completed"}]}, slug="buyers")
    repeat = audience({"all": [{"computed": "orders", "op": "gte", "value": 2}]}, slug="repeat")
    gold = audience(slug="gold")
    hook = webhook_destination("http://127.0.0.1:9/hook", slug="hook", name="Hook", owner=owner)
    crm = webhook_destination(
        "http://127.0.0.1:9/crm", slug="crm", name="CRM", operations=["upsert", "delete"], consent_purpose=""
    )
    make_sync(buyers, hook, slug="buyers-hook", name="Buyers", owner=owner, schedule_minutes=15)
    make_sync(gold, crm, slug="gold-crm", name="Gold CRM")
    trigger_save(
        name="Thanks",
        slug="thanks",
        kind=Trigger.EVENT,
        destination=hook,
        event_type="order.completed",
        template={"type": "order.thanks", "to": "{email}"},
    )
    return SimpleNamespace(owner=owner, web=web, shop=shop, hook=hook, crm=crm, buyers=buyers, repeat=repeat)


def unzip(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def header(text: str) -> list[str]:
    return next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_the_pack_holds_every_file_with_its_columns(seeded):
    now = timezone.now()
    pack = handoff_build(now=now)
    assert pack.filename == f"cdp-handoff-pack-{timezone.localdate(now):%Y-%m-%d}.zip"
    files = unzip(pack.content)
    assert (
        list(files)
        == list(FILES)
        == [
            "README.txt",
            "event_mapping.csv",
            "api_readiness.csv",
            "partner_matrix.csv",
            "runbook.md",
            "pilot_gates.md",
        ]
    )
    assert header(files["event_mapping.csv"]) == EVENT_MAPPING_COLUMNS
    assert EVENT_MAPPING_COLUMNS[:9] == [
        "source",
        "source_kind",
        "source_event",
        "canonical_event",
        "required_attributes",
        "optional_attributes",
        "sample_payload",
        "latency_requirement",
        "consumer_notes",
    ]
    assert header(files["api_readiness.csv"]) == API_READINESS_COLUMNS
    assert header(files["partner_matrix.csv"]) == PARTNER_MATRIX_COLUMNS
    readme = files["README.txt"]
    assert f"Generated from the live configuration at {now:%Y-%m-%d %H:%M} UTC" in readme
    for name in FILES[1:]:
        assert name in readme
    assert "event_mapping.csv (" in readme and "Pilot verdict at that moment: NO-GO" in readme


def test_event_mapping_rows_from_what_each_source_sent(seeded):
    rows = read_csv(unzip(handoff_build().content)["event_mapping.csv"])
    seen = {(row["source"], row["source_event"], row["canonical_event"]): row for row in rows if row["source"]}
    assert set(seen) == {
        ("canonical-test-source", "(none)", "profile.identified"),
        ("shop", "customers/create", "customer.created"),
        ("web-sdk", "identify", "profile.identified"),
        ("web-sdk", "track: Order Completed", "order.completed"),
    }
    order = seen[("web-sdk", "track: Order Completed", "order.completed")]
    assert order["source_kind"] == "tracking"
    assert order["required_attributes"] == "currency (string); order_id (string); total (number)"
    assert order["events_30d"] == "1"
    assert order["latency_requirement"].startswith("real-time")
    assert "thanks → Hook" in order["latency_requirement"]
    assert order["consumer_notes"] == (
        "segments: Audience (buyers), Audience (repeat); computed traits: orders; syncs: buyers-hook → Hook; "
        "triggers: thanks → Hook"
    )
    sample = json.loads(order["sample_payload"])
    assert sample["event"] == "Order Completed" and sample["properties"]["order_id"] == "o-1"
    assert sample["context"]["ip"] == "***"
    identify = seen[("web-sdk", "identify", "profile.identified")]
    assert identify["latency_requirement"] == "within 60 minutes (source freshness SLA)"
    traits = json.loads(identify["sample_payload"])["traits"]
    assert traits["email"] == "a***@e***.com" and traits["firstName"] == "A." and traits["lastName"] == "L."
    assert traits["address"] == {"city": "***", "postalCode": "***", "street": "***"}
    customer = json.loads(seen[("shop", "customers/create", "customer.created")]["sample_payload"])
    assert customer["email"] == "b***@b***.com" and customer["note"] == "This customer loves ice cream"
    assert customer["client_details"]["browser_ip"] == "***"
    # Only personal values go: timestamps, consent states and ids keep the sample useful.
    assert customer["created_at"] == "2026-03-01T10:00:00-05:00"
    assert customer["email_marketing_consent"]["state"] == "subscribed"
    assert customer["admin_graphql_api_id"] == "gid://shopify/Customer/706405506930370084"
    address = customer["default_address"]
    assert (address["id"], address["address1"], address["name"], address["phone"]) == (
        1,
        "***",
        "B. B.",
        "***-***-**34",
    )
    # Contract types nobody sent are listed too, with their attributes.
    unseen = {row["canonical_event"]: row for row in rows if row["source_event"] == NOT_SEEN}
    assert set(unseen) == set(EventContract.objects.values_list("event_type", flat=True)) - {
        "profile.identified",
        "customer.created",
        "order.completed",
    }
    assert unseen["payment.succeeded"]["required_attributes"].startswith("amount (number)")
    assert unseen["payment.succeeded"]["events_30d"] == "0"


def test_no_personal_data_anywhere_in_the_pack(seeded):
    files = unzip(handoff_build().content)
    text = "\n".join(files.values())
    for value in PERSONAL:
        assert value not in text, value
    for word in PERSONAL_WORDS:
        assert not re.search(rf"\b{word}\b", text), word
    # The raw payloads did hold them: the masking did the work.
    stored = json.dumps(list(RawEvent.objects.values_list("payload", flat=True)))
    assert all(value in stored for value in ("ada.lovelace@example.com", "bob@biller.com", "123 Elm St."))


def test_masking_follows_keys_recursively_and_masks_repeats_elsewhere():
    payload = {
        "customerName": "Grace Hopper",
        "description": "Booking for Grace Hopper, call (415) 555-0100",
        "contact": {"emails": ["grace@navy.mil"], "MobilePhone": "4155550100"},
        "items": [{"sku": "MAT-1", "quantity": 2}],
        "id": "820982911946154508",
        "sentBy": "grace@navy.mil",
        "booking_date": "2026-03-01",
        "source_ip": "192.0.2.1",
    }
    masked = mask_payload(payload)
    assert masked["customerName"] == "G. H."
    assert masked["description"] == "Booking for ***, call (***) ***-**00"
    assert masked["contact"] == {"emails": ["g***@n***.mil"], "MobilePhone": "********00"}
    assert masked["items"] == [{"sku": "MAT-1", "quantity": 2}]
    assert masked["id"] == "820982911946154508"
    assert masked["sentBy"] == "g***@n***.mil"
    assert (masked["booking_date"], masked["source_ip"]) == ("2026-03-01", "***")


def test_api_readiness_per_source_and_destination_with_live_checks(seeded):
    rows = {row["slug"]: row for row in read_csv(unzip(handoff_build().content)["api_readiness.csv"])}
    assert set(rows) == {"canonical-test-source", "web-sdk", "shop", "hook", "crm"}
    web = rows["web-sdk"]
    assert (web["side"], web["kind"], web["owner"]) == ("source", "tracking", "olive")
    assert web["auth"].startswith("HTTP Basic: the source's write key as user name")
    assert web["rate_limits"].startswith("50000 messages/s for this source")
    assert web["idempotency_key"].startswith("messageId")
    assert "write key set" in web["live_checks"] and "last event received" in web["live_checks"]
    assert (web["ready"], web["problems"]) == ("yes", "")
    shop = rows["shop"]
    assert shop["auth"].startswith("X-Shopify-Hmac-Sha256")
    assert "8 retries over 4 hours" in shop["retry_behaviour"]
    assert shop["idempotency_key"] == "X-Shopify-Event-Id"
    assert "1 signing secret set" in shop["live_checks"]
    assert (shop["ready"], shop["problems"]) == ("no", "no owner")
    hook = rows["hook"]
    assert (hook["side"], hook["kind"], hook["owner"]) == ("destination", "webhook", "olive")
    assert hook["idempotency_key"].startswith("contract field `email`; webhook-id header")
    assert "secrets present: signing_secret" in hook["live_checks"] and "never tested" in hook["live_checks"]
    assert "at most 3 attempts per record" in hook["retry_behaviour"]
    assert "429 pauses the destination until Retry-After" in hook["error_codes"]
    assert "first run sends the whole current audience" in hook["backfill"]
    assert (hook["ready"], hook["problems"]) == ("no", "connection never tested")
    Destination.objects.filter(slug="hook").update(last_test_ok=True, last_tested_at=timezone.now())
    rows = {row["slug"]: row for row in read_csv(unzip(handoff_build().content)["api_readiness.csv"])}
    assert (rows["hook"]["ready"], rows["hook"]["problems"]) == ("yes", "")
    assert "last test passed" in rows["hook"]["live_checks"]


def test_partner_matrix_links_sources_to_destinations_through_segments(seeded):
    rows = read_csv(unzip(handoff_build().content)["partner_matrix.csv"])
    links = {(row["source"], row["activation"], row["destination"]): row for row in rows}
    assert set(links) == {
        ("web-sdk", "buyers-hook", "Hook"),
        ("canonical-test-source", "gold-crm", "CRM"),
        ("web-sdk", "thanks", "Hook"),
    }
    buyers = links[("web-sdk", "buyers-hook", "Hook")]
    assert buyers["feeds_through"] == "events: order.completed"
    assert (buyers["segment"], buyers["activation_type"], buyers["mode_or_cause"]) == (
        "Audience",
        "sync",
        "Upsert: add and change, never remove",
    )
    assert (buyers["frequency"], buyers["activation_owner"], buyers["destination_owner"]) == (
        "every 15 minutes",
        "olive",
        "olive",
    )
    assert (buyers["source_owner"], buyers["consent_purpose"]) == ("olive", "email_marketing")
    gold = links[("canonical-test-source", "gold-crm", "CRM")]
    assert gold["feeds_through"] == "traits: plan"
    assert (gold["consent_purpose"], gold["activation_owner"]) == ("(none)", "")
    thanks = links[("web-sdk", "thanks", "Hook")]
    assert (thanks["activation_type"], thanks["mode_or_cause"], thanks["frequency"]) == (
        "trigger",
        "event order.completed",
        "real-time",
    )


def test_runbook_adds_owners_and_rollback_steps_to_the_activation_runbook(seeded):
    files = unzip(handoff_build().content)
    runbook = files["runbook.md"]
    hook = runbook[runbook.index("## Hook (`hook`)") :]
    crm = runbook[runbook.index("## CRM (`crm`)") : runbook.index("## Hook (`hook`)")]
    assert "- Owner: olive" in hook and "- Owner: **none assigned**" in crm
    assert (
        "Buyers (`buyers-hook`): segment Audience (published version 1); Upsert: add and change, never remove; "
        "every 15 minutes; owner olive" in hook
    )
    assert "### Rollback steps" in hook
    assert (
        "1. Stop further sends: switch off the sync buyers-hook (sync page → Edit → Active) and the trigger thanks"
        in hook
    )
    assert "2. Take the audience back: roll the segment back" in hook
    assert "Messages already delivered by triggers cannot be recalled" in hook
    assert "2. This destination has no removal: people already sent stay there unless deleted" in crm
    assert "**WARNING: no consent purpose**" in crm
    assert "- Idempotency key: `email`" in hook and "- Retries: " in hook
    assert "Deletion requests: a profile.deleted message with the idempotency key" in hook
    gates = files["pilot_gates.md"]
    assert "Verdict: **NO-GO**" in gates
    assert "## 1. Owners assigned for sources and destinations: FAIL" in gates
    assert "**✗** Source Shop (shop): no owner" in gates
    assert "How to fix: " in gates


def test_the_pack_costs_the_same_queries_whatever_the_configuration_size(seeded, webhook_destination, make_sync):
    with CaptureQueriesContext(connection) as small:
        handoff_build()
    for number in range(3):
        source_create(name=f"Extra {number}", kind="stripe", owner=seeded.owner)
        destination = webhook_destination(f"http://127.0.0.1:9/x{number}", owner=seeded.owner)
        make_sync(seeded.buyers, destination, owner=seeded.owner)
        trigger_save(
            name=f"T{number}",
            slug=f"t-{number}",
            kind=Trigger.EVENT,
            destination=destination,
            event_type="order.completed",
            template={"type": "thanks", "to": "{email}"},
        )
    with CaptureQueriesContext(connection) as large:
        pack = handoff_build()
    assert pack.rows["api_readiness.csv"] == 11
    assert len(large.captured_queries) == len(small.captured_queries)


def test_a_purged_payload_is_said_to_be_purged(seeded):
    RawEvent.objects.filter(source=seeded.shop).update(payload={"_purged": "2026-01-01"})
    rows = read_csv(unzip(handoff_build().content)["event_mapping.csv"])
    [row] = [row for row in rows if row["source"] == "shop"]
    assert row["sample_payload"] == "(purged by retention)"


def test_module_facts_cover_every_kind():
    from activations.models import Destination as DestinationModel
    from profiles.models import Source

    assert set(handoff.SOURCE_FACTS) == {kind for kind, _ in Source.KINDS}
    assert set(handoff.DESTINATION_FACTS) == {kind for kind, _ in DestinationModel.KINDS}
