"""Activations over the REST API: permissions per role, write-only secrets, syncs and runs against a
live local receiver, 409 on a busy sync, replays, reconciliation and triggers."""

import json

import pytest
from django.utils import timezone

from activations.local_destination import LocalDestination, Reply
from activations.models import Destination, Sync, SyncRun, Trigger
from activations.selectors import reconciliation_by_destination, reconciliation_since
from activations.syncs import sync_run_execute, sync_run_start
from activations.triggers import trigger_save
from tests.activations.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
UNREACHABLE = "http://127.0.0.1:9/hook"
CONTRACT = [{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}]


def assert_no_secret(response) -> None:
    text = json.dumps(response.json()) if response.content else ""
    assert WEBHOOK_SECRET not in text and WEBHOOK_SECRET.removeprefix("whsec_") not in text


@pytest.fixture
def gold(ingest, audience):
    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    ingest(email="ben@example.com", traits={"plan": "gold"}, consent={"email_marketing": False})
    ingest(email="cy@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    return audience(slug="gold")


@pytest.fixture
def server():
    with LocalDestination() as server:
        yield server


def run_now(sync, **options):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False, **options)
    return sync_run_execute(run.pk)


# -- permissions ------------------------------------------------------------------------------------


@pytest.fixture
def everything(gold, webhook_destination, make_sync):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    sync = make_sync(gold, destination, slug="gold-hook")
    run = SyncRun.objects.create(sync=sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.COMPLETED)
    trigger_save(
        name="Order",
        slug="order",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "thanks", "to": "{email}"},
    )
    return run


READS = [
    "/api/v1/destinations/",
    "/api/v1/destinations/hook/",
    "/api/v1/syncs/",
    "/api/v1/syncs/gold-hook/",
    "/api/v1/sync-runs/",
    "/api/v1/sync-runs/{run}/",
    "/api/v1/sync-runs/{run}/records/",
    "/api/v1/reconciliation/",
    "/api/v1/triggers/",
    "/api/v1/triggers/order/",
    "/api/v1/triggers/order/latency/",
    "/api/v1/trigger-sends/",
]
ENGINEER, MARKETER = {"integration_engineer"}, {"marketer", "integration_engineer"}
# (method, path, body, roles allowed). Bodies are invalid where a write would succeed: only the
# permission decides between 403 and anything else.
WRITES = [
    ("post", "/api/v1/destinations/", {"slug": "x"}, ENGINEER),
    ("patch", "/api/v1/destinations/hook/", {"rate_limit_per_second": 0}, ENGINEER),
    ("post", "/api/v1/destinations/hook/test/", {}, ENGINEER),
    ("post", "/api/v1/syncs/", {"slug": "x"}, MARKETER),
    ("patch", "/api/v1/syncs/gold-hook/", {"mode": "nope"}, MARKETER),
    ("post", "/api/v1/syncs/gold-hook/run/", {"dry_run": "maybe"}, MARKETER),
    ("post", "/api/v1/sync-runs/{run}/retry-failed/", {}, ENGINEER),
    ("post", "/api/v1/triggers/", {"slug": "x"}, MARKETER),
    ("patch", "/api/v1/triggers/order/", {"kind": "nope"}, MARKETER),
]


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(api, everything, role):
    client = api(role)
    for path in READS:
        response = client.get(path.format(run=everything.pk))
        assert response.status_code == (403 if role == "guest_services" else 200), (path, role)
        assert_no_secret(response)
    for method, path, body, allowed in WRITES:
        response = getattr(client, method)(path.format(run=everything.pk), body, format="json")
        if role in allowed:
            assert response.status_code in (200, 400), (method, path, role, response.content)
        else:
            assert response.status_code == 403, (method, path, role)
    assert Destination.objects.get(slug="hook").rate_limit_per_second == 1000
    assert not SyncRun.objects.filter(is_dry_run=True).exists()


def test_anonymous_requests_are_refused(client, everything):
    assert client.get("/api/v1/destinations/").status_code in (401, 403)
    assert client.post("/api/v1/syncs/gold-hook/run/", {}).status_code in (401, 403)


# -- destinations -----------------------------------------------------------------------------------


def destination_body(**overrides):
    body = {
        "slug": "orders-hook",
        "name": "Orders hook",
        "kind": "webhook",
        "base_url": UNREACHABLE,
        "secrets": {"signing_secret": WEBHOOK_SECRET},
        "fields": CONTRACT,
        "idempotency_key": "email",
        "operations": ["upsert", "remove"],
        "consent_purpose": "email_marketing",
        "pii_mode": "cleartext",
        "rate_limit_per_second": 20,
        "batch_size": 1,
    }
    body.update(overrides)
    return body


def test_destination_create_errors_name_the_field_and_secrets_are_write_only(api):
    client = api("integration_engineer")
    bad = client.post("/api/v1/destinations/", destination_body(idempotency_key="phone"), format="json")
    assert bad.status_code == 400
    assert "the idempotency key 'phone' must be one of the contract's fields" in bad.json()["fields"][0]
    assert_no_secret(bad)
    bad = client.post(
        "/api/v1/destinations/", destination_body(kind="meta_audience", operations=["upsert"]), format="json"
    )
    assert bad.status_code == 400 and "takes PII only as hashed" in bad.json()["pii_mode"][0]
    bad = client.post("/api/v1/destinations/", destination_body(operations=["teleport"]), format="json")
    assert bad.status_code == 400 and "operations" in bad.json()

    created = client.post("/api/v1/destinations/", destination_body(), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "secrets" not in body and body["secret_names"] == ["signing_secret"]
    assert body["owner"] == client.username
    assert_no_secret(created)
    destination = Destination.objects.get(slug="orders-hook")
    assert destination.secret_values == {"signing_secret": WEBHOOK_SECRET}

    # An empty value keeps the stored secret; the slug and kind cannot change.
    patched = client.patch(
        "/api/v1/destinations/orders-hook/", {"secrets": {"signing_secret": ""}, "name": "Renamed"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Renamed"
    destination.refresh_from_db()
    assert destination.secret_values == {"signing_secret": WEBHOOK_SECRET}
    assert destination.secrets_rotated_at is None
    moved = client.patch("/api/v1/destinations/orders-hook/", {"slug": "elsewhere", "kind": "braze"}, format="json")
    assert moved.status_code == 400 and set(moved.json()) == {"slug", "kind"}
    refused = client.patch("/api/v1/destinations/orders-hook/", {"rate_limit_per_second": 0}, format="json")
    assert refused.status_code == 400 and refused.json() == {"rate_limit_per_second": ["must be above 0"]}
    destination.refresh_from_db()
    assert destination.rate_limit_per_second == 20
    assert client.put("/api/v1/destinations/orders-hook/", destination_body(), format="json").status_code == 405

    marketer = api("marketer")
    for response in (marketer.get("/api/v1/destinations/"), marketer.get("/api/v1/destinations/orders-hook/")):
        assert response.status_code == 200
        assert_no_secret(response)
    assert marketer.post("/api/v1/destinations/orders-hook/test/").status_code == 403


def test_destination_connection_test(api, webhook_destination):
    client = api("integration_engineer")
    with LocalDestination() as server:
        webhook_destination(server.url, slug="hook")
        response = client.post("/api/v1/destinations/hook/test/")
        assert response.json() == {"ok": True, "message": "HTTP 200: connection works"}
        assert server.requests[0].json["type"] == "cdp.connection_test"
    failed = client.post("/api/v1/destinations/hook/test/").json()
    assert failed["ok"] is False and failed["message"].startswith("could not reach")
    detail = client.get("/api/v1/destinations/hook/").json()
    assert detail["last_test_ok"] is False and detail["last_tested_at"]


# -- syncs and runs ---------------------------------------------------------------------------------


def test_sync_create_and_update(api, gold, webhook_destination):
    webhook_destination(UNREACHABLE, slug="hook", operations=["upsert"])
    client = api("marketer")
    body = {"slug": "gold-hook", "name": "Gold", "segment": "gold", "destination": "hook", "fields": ["plan"]}

    outside = client.post("/api/v1/syncs/", {**body, "fields": ["plan", "shoe_size"]}, format="json")
    assert outside.status_code == 400
    assert outside.json() == {"fields": ["fields outside the destination's contract: shoe_size"]}
    mirror = client.post("/api/v1/syncs/", {**body, "mode": "mirror"}, format="json")
    assert mirror.json() == {"mode": ["the destination's contract does not allow remove"]}
    unknown = client.post("/api/v1/syncs/", {**body, "segment": "nope"}, format="json")
    assert unknown.status_code == 400 and "segment" in unknown.json()

    created = client.post("/api/v1/syncs/", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["fields"], data["mode"], data["owner"], data["problems"], data["last_run"]) == (
        ["plan"],
        "upsert",
        client.username,
        [],
        None,
    )
    patched = client.patch("/api/v1/syncs/gold-hook/", {"schedule_minutes": 60, "mode": "mirror"}, format="json")
    assert patched.status_code == 400 and "mode" in patched.json()
    assert Sync.objects.get(slug="gold-hook").mode == "upsert"
    patched = client.patch("/api/v1/syncs/gold-hook/", {"schedule_minutes": 60}, format="json")
    assert patched.status_code == 200 and patched.json()["schedule_minutes"] == 60


def test_dry_run_run_busy_and_not_ready(
    api, gold, server, webhook_destination, make_sync, django_capture_on_commit_callbacks
):
    sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
    client = api("marketer")

    with django_capture_on_commit_callbacks(execute=True):
        dry = client.post("/api/v1/syncs/gold-hook/run/", {"dry_run": True}, format="json")
    assert dry.status_code == 202
    assert (dry.json()["is_dry_run"], dry.json()["status"]) == (True, "pending")  # a worker executes it
    assert dry.json()["triggered_by"] == f"api:{client.username}"
    done = client.get(f"/api/v1/sync-runs/{dry.json()['id']}/").json()
    assert (done["status"], done["planned"]) == ("completed", 2)
    assert done["skipped_by_reason"] == [
        {"code": "consent", "label": "No consent for the destination's purpose", "count": 1}
    ]
    assert server.requests == []
    records = client.get(f"/api/v1/sync-runs/{dry.json()['id']}/records/", {"status": "dry_run"}).json()["results"]
    # Personal data masked (a marketer; reveal is per profile, see tests/cdp_site/test_pii_masking.py).
    assert sorted(record["payload"]["email"] for record in records) == ["a***@e***.com", "c***@e***.com"]

    with django_capture_on_commit_callbacks(execute=True):
        real = client.post("/api/v1/syncs/gold-hook/run/", {}, format="json")
    assert real.status_code == 202
    run = client.get(f"/api/v1/sync-runs/{real.json()['id']}/").json()
    assert (run["status"], run["applied"], run["unapplied"], run["reconciliation_delta"]) == ("completed", 2, 0, 0.0)
    assert len(server.accepted()) == 2
    records = client.get(f"/api/v1/sync-runs/{run['id']}/records/").json()["results"]
    assert {record["status"] for record in records} == {"applied", "skipped"}
    assert all(record["payload"] is None for record in records)  # real runs: no payloads

    pending = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    busy = client.post("/api/v1/syncs/gold-hook/run/", {}, format="json")
    assert busy.status_code == 409
    assert busy.json()["run"]["id"] == pending.pk and "still pending" in busy.json()["detail"]

    Sync.objects.filter(pk=sync.pk).update(is_active=False)
    off = client.post("/api/v1/syncs/gold-hook/run/", {"dry_run": True}, format="json")
    assert off.status_code == 400 and off.json() == {"detail": ["the sync is switched off"]}

    assert api("privacy_officer").post("/api/v1/syncs/gold-hook/run/", {}, format="json").status_code == 403


def test_sync_run_list_filters_and_records_pagination(api, gold, webhook_destination, make_sync):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    first = make_sync(gold, destination, slug="first")
    second = make_sync(gold, destination, slug="second")
    dry = run_now(first, dry_run=True)
    other = run_now(second, dry_run=True)
    SyncRun.objects.create(sync=second, triggered_by="test", created_at=timezone.now(), status=SyncRun.FAILED)
    client = api("privacy_officer")

    def ids(**params):
        return [run["id"] for run in client.get("/api/v1/sync-runs/", params).json()["results"]]

    assert ids(sync="first") == [dry.pk]
    assert other.pk in ids(sync="second", is_dry_run="true") and len(ids(sync="second", is_dry_run="false")) == 1
    assert ids(status="failed") == ids(sync="second", is_dry_run="false")
    assert client.get("/api/v1/sync-runs/", {"status": "bogus"}).status_code == 400

    detail = client.get(f"/api/v1/sync-runs/{dry.pk}/").json()
    assert (detail["sync"], detail["destination"], detail["segment_version"]) == ("first", "hook", 1)
    assert (detail["planned"], detail["skipped_reasons"], detail["reconciliation_delta"]) == (2, {"consent": 1}, None)
    skipped = client.get(f"/api/v1/sync-runs/{dry.pk}/records/", {"skip_reason": "consent"}).json()["results"]
    assert [(r["status"], r["skip_reason"]) for r in skipped] == [("skipped", "consent")]
    assert client.get(f"/api/v1/sync-runs/{dry.pk}/records/", {"operation": "teleport"}).status_code == 400
    assert client.get("/api/v1/sync-runs/999999/records/").status_code == 404


def test_retry_failed_records(api, gold, webhook_destination, make_sync, django_capture_on_commit_callbacks):
    healthy = {"value": False}

    def responder(received):
        ok = healthy["value"] or "cy@" not in received.body.decode()
        return Reply(200, {}) if ok else Reply(422, {"error": "invalid"})

    with LocalDestination(responder) as server:
        sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
        run = run_now(sync)
        assert (run.applied, run.failed) == (1, 1)
        assert api("marketer").post(f"/api/v1/sync-runs/{run.pk}/retry-failed/").status_code == 403
        client = api("integration_engineer")
        failed = client.get(f"/api/v1/sync-runs/{run.pk}/records/", {"status": "failed"}).json()["results"]
        assert [(r["status_code"], r["attempts"]) for r in failed] == [(422, 1)]
        healthy["value"] = True
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/sync-runs/{run.pk}/retry-failed/")
        assert response.status_code == 200
        assert response.json()["queued"] == 1
        run.refresh_from_db()
        assert (run.status, run.applied, run.failed) == ("completed", 2, 0)
        dry = run_now(sync, dry_run=True)
        refused = client.post(f"/api/v1/sync-runs/{dry.pk}/retry-failed/")
        assert refused.status_code == 400 and "dry run" in refused.json()["detail"]


def test_reconciliation_matches_the_page(api, gold, webhook_destination, make_sync):
    def responder(received):
        return Reply(422, {"error": "bad"}) if "cy@" in received.body.decode() else Reply(200, {})

    with LocalDestination(responder) as server:
        sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
        run = run_now(sync)
        run_now(sync, dry_run=True)
    body = api("marketer").get("/api/v1/reconciliation/").json()
    assert body["days"] == 30
    [row] = body["destinations"]
    assert row == {
        "destination": "hook",
        "destination_name": "Webhook",
        "runs": 1,
        "in_progress": 0,
        "planned": 2,
        "applied": 1,
        "failed": 1,
        "skipped": 1,
        "unapplied": 1,
        "delta": 0.5,
    }
    page_rows = reconciliation_by_destination(reconciliation_since(30))
    assert [(r["planned"], r["applied"], r["unapplied"]) for r in page_rows] == [(2, 1, 1)]
    assert [r["id"] for r in body["runs"]] == [run.pk]
    assert body["runs"][0]["reconciliation_delta"] == 0.5
    assert api("marketer").get("/api/v1/reconciliation/", {"days": "x"}).status_code == 400


# -- triggers ---------------------------------------------------------------------------------------


def trigger_body(**overrides):
    body = {
        "slug": "big-order",
        "name": "Big order",
        "kind": "event",
        "destination": "hook",
        "event_type": "order.completed",
        "where": [{"property": "total", "op": "gt", "value": 50}],
        "template": {"type": "order.thanks", "to": "{email}"},
    }
    body.update(overrides)
    return body


def test_triggers_latency_and_sends(api, ingest, ingest_live, server, webhook_destination):
    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    webhook_destination(server.url, slug="hook")
    client = api("marketer")
    outside = client.post(
        "/api/v1/triggers/", trigger_body(template={"type": "x", "text": "{shoe_size}"}), format="json"
    )
    assert outside.status_code == 400
    assert outside.json() == {"template": ["fields outside Webhook's contract: shoe_size"]}
    no_event = client.post("/api/v1/triggers/", trigger_body(event_type=""), format="json")
    assert no_event.status_code == 400 and "event_type" in no_event.json()

    created = client.post("/api/v1/triggers/", trigger_body(), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["owner"] == client.username
    assert client.patch("/api/v1/triggers/big-order/", {"quiet_start_hour": 22}, format="json").json() == {
        "quiet_start_hour": ["give both quiet hours or neither"]
    }
    assert client.patch("/api/v1/triggers/big-order/", {"cap_count": 2}, format="json").json()["cap_count"] == 2

    ingest_live(
        email="ana@example.com",
        event_type="order.completed",
        properties={"order_id": "o1", "total": 80, "currency": "EUR"},
    )
    assert len(server.accepted()) == 1
    latency = client.get("/api/v1/triggers/big-order/latency/").json()
    assert latency["count"] == 1 and latency["p50_ms"] == latency["max_ms"] >= 0
    sends = client.get("/api/v1/trigger-sends/", {"trigger": "big-order", "status": "sent"}).json()["results"]
    assert [(send["trigger"], send["status"], send["status_code"]) for send in sends] == [("big-order", "sent", 200)]
    assert "payload" not in sends[0]
    assert client.get("/api/v1/trigger-sends/", {"status": "failed"}).json()["results"] == []
