"""The activation pages: permissions per role, destination and sync forms, runs and dry runs against a
live local receiver, replays, reconciliation and its CSV exports, the runbook, triggers, and the
`sync_run` command."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from activations.destinations import connector_defaults
from activations.local_destination import LocalDestination, Reply
from activations.models import Destination, Sync, SyncRecord, SyncRun, Trigger
from activations.syncs import sync_run_execute, sync_run_start
from activations.triggers import trigger_save
from tests.activations.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
SECRET_PARTS = (WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_"))
UNREACHABLE = "http://127.0.0.1:9/hook"


def assert_no_secret(content: bytes | str) -> None:
    text = content.decode() if isinstance(content, bytes) else content
    for part in SECRET_PARTS:
        assert part not in text


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def server():
    with LocalDestination() as server:
        yield server


@pytest.fixture
def gold(ingest, audience):
    """Ana (consents), Ben (does not) and Cy (consents), all gold; the published audience of them."""
    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    ingest(email="ben@example.com", traits={"plan": "gold"}, consent={"email_marketing": False})
    ingest(email="cy@example.com", traits={"plan": "gold", "first_name": "Cy"}, consent={"email_marketing": True})
    return audience(slug="gold")


def run_now(sync, **options):
    run = sync_run_start(sync=sync, triggered_by="test", enqueue=False, **options)
    return sync_run_execute(run.pk)


# -- permissions ------------------------------------------------------------------------------------


@pytest.fixture
def everything(gold, webhook_destination, make_sync):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    sync = make_sync(gold, destination, slug="gold-hook")
    run = SyncRun.objects.create(sync=sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.COMPLETED)
    trigger = trigger_save(
        name="Order",
        slug="order",
        kind=Trigger.EVENT,
        destination=destination,
        event_type="order.completed",
        template={"type": "thanks", "to": "{email}"},
    )
    return {"destination": destination, "sync": sync, "run": run, "trigger": trigger}


VIEW_PAGES = [
    ("activations:destination_list", None),
    ("activations:destination_detail", "destination"),
    ("activations:sync_list", None),
    ("activations:sync_detail", "sync"),
    ("activations:run_detail", "run"),
    ("activations:reconciliation", None),
    ("activations:reconciliation_csv", None),
    ("activations:runbook", None),
    ("activations:runbook_download", None),
    ("activations:trigger_list", None),
    ("activations:trigger_detail", "trigger"),
]
EDIT_PAGES = {
    ("activations:destination_new", None): {"integration_engineer"},
    ("activations:destination_edit", "destination"): {"integration_engineer"},
    ("activations:sync_new", None): {"marketer", "integration_engineer"},
    ("activations:sync_edit", "sync"): {"marketer", "integration_engineer"},
    ("activations:trigger_new", None): {"marketer", "integration_engineer"},
    ("activations:trigger_edit", "trigger"): {"marketer", "integration_engineer"},
}


def url_for(objects, name, key):
    if key is None:
        return reverse(name)
    obj = objects[key]
    return reverse(name, args=[obj.pk if key == "run" else obj.slug])


@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix_for_pages(client, make_user, everything, role):
    client.force_login(make_user(role))
    for name, key in VIEW_PAGES:
        response = client.get(url_for(everything, name, key))
        expected = 403 if role == "guest_services" else 200
        assert response.status_code == expected, (name, role)
        body = streamed(response) if response.streaming else response.content
        assert_no_secret(body)
    for (name, key), allowed in EDIT_PAGES.items():
        response = client.get(url_for(everything, name, key))
        assert response.status_code == (200 if role in allowed else 403), (name, role)
        assert_no_secret(response.content)
    # Records of a run, in CSV: whoever may see records.
    records = client.get(reverse("activations:reconciliation_csv"), {"records": everything["run"].pk})
    assert records.status_code == (403 if role == "guest_services" else 200)


POST_ACTIONS = {
    "activations:destination_test": ("destination", {"integration_engineer"}),
    "activations:sync_run": ("sync", {"marketer", "integration_engineer"}),
    "activations:run_resume": ("run", {"marketer", "integration_engineer"}),
    "activations:run_retry_failed": ("run", {"integration_engineer"}),
}


@pytest.mark.parametrize("role", ["marketer", "guest_services", "privacy_officer"])
def test_actions_are_refused_without_the_permission_and_change_nothing(client, make_user, everything, role):
    client.force_login(make_user(role))
    runs = SyncRun.objects.count()
    for name, (key, allowed) in POST_ACTIONS.items():
        if role in allowed:
            continue
        assert client.post(url_for(everything, name, key)).status_code == 403, (name, role)
    assert SyncRun.objects.count() == runs
    assert Destination.objects.get(slug="hook").last_tested_at is None
    # Forms refuse writes too.
    response = client.post(reverse("activations:destination_edit", args=["hook"]), {"name": "Changed"})
    assert response.status_code == 403
    assert Destination.objects.get(slug="hook").name == "Webhook"


def test_actions_are_post_only(client, make_user, everything):
    client.force_login(make_user("integration_engineer"))
    for name, (key, _allowed) in POST_ACTIONS.items():
        assert client.get(url_for(everything, name, key)).status_code == 405


def test_anonymous_users_go_to_login(client, everything):
    for name, key in [*VIEW_PAGES, *EDIT_PAGES]:
        response = client.get(url_for(everything, name, key))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), name


def test_menu_follows_roles(client, make_user):
    client.force_login(make_user("marketer"))
    html = client.get(reverse("activations:sync_list")).content.decode()
    for label in ("Destinations", "Syncs", "Triggers", "Reconciliation", "Runbook"):
        assert f">{label}</a>" in html
    client.force_login(make_user("guest_services"))
    html = client.get(reverse("home")).content.decode()
    assert ">Destinations</a>" not in html and ">Syncs</a>" not in html


# -- destinations -----------------------------------------------------------------------------------


def destination_post(**overrides):
    data = {
        "kind": "webhook",
        "name": "Orders hook",
        "slug": "orders-hook",
        "base_url": UNREACHABLE,
        "settings": "{}",
        "secrets": f"signing_secret={WEBHOOK_SECRET}",
        "fields": '[{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}]',
        "idempotency_key": "email",
        "operations": ["upsert", "remove"],
        "consent_purpose": "email_marketing",
        "pii_mode": "cleartext",
        "rate_limit_per_second": "20",
        "batch_size": "1",
        "max_attempts": "5",
        "timeout_seconds": "5",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_new_destination_form_starts_from_the_connector_defaults(client, make_user):
    client.force_login(make_user("integration_engineer"))
    response = client.get(reverse("activations:destination_new"), {"kind": "braze"})
    form = response.context["form"]
    defaults = connector_defaults("braze")
    assert form["kind"].value() == "braze"
    assert form["batch_size"].value() == defaults["batch_size"]
    assert form["rate_limit_per_second"].value() == defaults["rate_limit_per_second"]
    assert sorted(form["operations"].value()) == sorted(defaults["operations"])
    html = response.content.decode()
    assert f'name="batch_size" value="{defaults["batch_size"]}"' in html


def test_destination_form_shows_errors_on_their_fields_then_creates(client, make_user):
    client.force_login(make_user("integration_engineer"))
    url = reverse("activations:destination_new")

    bad_json = client.post(url, destination_post(fields="[{oops", settings="[1]", secrets="no equals sign"))
    assert bad_json.status_code == 400
    errors = bad_json.context["form"].errors
    assert "Not valid JSON" in errors["fields"][0]
    assert errors["settings"] == ["A JSON object, e.g. {...}."]
    assert errors["secrets"] == ["Line 1 is not name=value."]

    contract = client.post(
        url,
        destination_post(
            secrets=f'{{"signing_secret": "{WEBHOOK_SECRET}"}}',
            idempotency_key="phone",
            rate_limit_per_second="0",
        ),
    )
    assert contract.status_code == 400
    errors = contract.context["form"].errors
    assert "the idempotency key 'phone' must be one of the contract's fields" in errors["idempotency_key"][0]
    assert_no_secret(contract.content)  # a typed secret is never shown back

    meta = client.post(url, destination_post(kind="meta_audience", operations=["upsert"], pii_mode="cleartext"))
    assert meta.status_code == 400
    assert "takes PII only as hashed" in meta.context["form"].errors["pii_mode"][0]

    created = client.post(url, destination_post())
    assert created.status_code == 302 and created["Location"] == reverse(
        "activations:destination_detail", args=["orders-hook"]
    )
    destination = Destination.objects.get(slug="orders-hook")
    assert destination.secret_values == {"signing_secret": WEBHOOK_SECRET}
    assert destination.operations == ["upsert", "remove"]
    detail = client.get(created["Location"]).content.decode()
    assert "<code>signing_secret</code>" in detail and '<span class="badge ok">set</span>' in detail
    assert "<code>email</code>" in detail and "identifier:email" in detail
    assert_no_secret(detail)


def test_editing_keeps_a_blank_secret_and_rotating_records_when(client, make_user, webhook_destination):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    client.force_login(make_user("integration_engineer"))
    url = reverse("activations:destination_edit", args=["hook"])
    form = client.get(url)
    assert_no_secret(form.content)
    assert 'name="slug"' in form.content.decode() and "disabled" in str(form.context["form"]["slug"])

    data = destination_post(slug="ignored", name="Renamed", secrets="", fields=form.context["form"]["fields"].value())
    assert client.post(url, data).status_code == 302
    destination.refresh_from_db()
    assert (destination.name, destination.slug) == ("Renamed", "hook")
    assert destination.secret_values == {"signing_secret": WEBHOOK_SECRET}
    assert destination.secrets_rotated_at is None

    data["secrets"] = "signing_secret=whsec_bmV3LXNlY3JldC12YWx1ZQ=="
    assert client.post(url, data).status_code == 302
    destination.refresh_from_db()
    assert destination.secret_values["signing_secret"] == "whsec_bmV3LXNlY3JldC12YWx1ZQ=="
    assert destination.secrets_rotated_at is not None
    detail = client.get(reverse("activations:destination_detail", args=["hook"])).content.decode()
    assert "whsec_bmV3LXNlY3JldC12YWx1ZQ==" not in detail and "Rotated: " in detail


def test_connection_test_button_against_a_live_receiver(client, make_user, webhook_destination):
    client.force_login(make_user("integration_engineer"))
    answers = {"status": 200}
    with LocalDestination(lambda received: Reply(answers["status"], {"error": "nope"})) as server:
        destination = webhook_destination(server.url, slug="hook")
        url = reverse("activations:destination_test", args=["hook"])
        response = client.post(url, follow=True)
        assert "Connection test passed: HTTP 200: connection works" in messages_of(response)
        [request] = server.requests
        assert request.json["type"] == "cdp.connection_test" and request.headers["webhook-signature"].startswith("v1,")
        answers["status"] = 401
        response = client.post(url, follow=True)
        assert any(message.startswith("Connection test failed: HTTP 401") for message in messages_of(response))
    destination.refresh_from_db()
    assert destination.last_test_ok is False and destination.last_tested_at is not None
    listing = client.get(reverse("activations:destination_list")).content.decode()
    assert '<span class="badge bad">failed</span>' in listing


# -- syncs ------------------------------------------------------------------------------------------


def sync_post(**overrides):
    data = {
        "name": "Gold to hook",
        "slug": "gold-hook",
        "segment": "gold",
        "destination": "hook",
        "mode": "upsert",
        "fields": ["plan"],
        "schedule_minutes": "0",
        "min_merge_confidence": "0.8",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_sync_form_offers_the_contract_fields_and_checks_the_contract(client, make_user, gold, webhook_destination):
    webhook_destination(UNREACHABLE, slug="hook", operations=["upsert"])
    client.force_login(make_user("marketer"))
    url = reverse("activations:sync_new")
    page = client.get(url, {"destination": "hook"})
    assert [value for value, _label in page.context["form"].fields["fields"].choices] == [
        "email",
        "plan",
        "first_name",
        "ltv",
    ]
    # The destination select reloads the field choices through htmx.
    assert 'hx-get="/syncs/new/"' in page.content.decode() and 'hx-select="#field-fields"' in page.content.decode()

    mirror = client.post(url, sync_post(mode="mirror"))
    assert mirror.status_code == 400
    assert mirror.context["form"].errors["mode"] == ["the destination's contract does not allow remove"]
    outside = client.post(url, sync_post(fields=["plan", "shoe_size"]))
    assert outside.status_code == 400
    assert "shoe_size is not one of the available choices" in outside.context["form"].errors["fields"][0]
    bad_share = client.post(url, sync_post(guard_max_low_confidence_share="1.5"))
    assert bad_share.context["form"].errors["guard_max_low_confidence_share"] == ["A share from 0 to 1."]

    created = client.post(url, sync_post())
    assert created.status_code == 302
    sync = Sync.objects.get(slug="gold-hook")
    assert (sync.fields, sync.mode, sync.owner.username) == (["plan"], "upsert", page.wsgi_request.user.username)

    edit = reverse("activations:sync_edit", args=["gold-hook"])
    assert client.post(edit, sync_post(schedule_minutes="15", fields=[])).status_code == 302
    sync.refresh_from_db()
    assert (sync.schedule_minutes, sync.fields) == (15, [])
    detail = client.get(reverse("activations:sync_detail", args=["gold-hook"])).content.decode()
    assert "every 15 minutes" in detail and "every contract field" in detail


def test_sync_detail_warns_about_problems(client, make_user, gold, webhook_destination, make_sync):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    make_sync(gold, destination, slug="gold-hook", is_active=False)
    client.force_login(make_user("privacy_officer"))
    html = client.get(reverse("activations:sync_detail", args=["gold-hook"])).content.decode()
    assert 'data-testid="problems"' in html and "the sync is switched off" in html
    assert "Run now" not in html  # read-only role


def test_dry_run_then_run_from_the_page(
    client, make_user, gold, server, webhook_destination, make_sync, django_capture_on_commit_callbacks
):
    sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
    client.force_login(make_user("marketer"))
    url = reverse("activations:sync_run", args=["gold-hook"])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"dry_run": "1"})
    dry = SyncRun.objects.get(sync=sync, is_dry_run=True)
    assert response["Location"] == reverse("activations:run_detail", args=[dry.pk])
    assert server.requests == []  # nothing reaches the destination
    dry.refresh_from_db()
    assert (dry.status, dry.planned, dry.skipped_reasons) == ("completed", 2, {"consent": 1})

    page = client.get(response["Location"])
    html = page.content.decode()
    assert "Dry run #" in html and 'data-testid="requests"' in html
    assert "a***@e***.com" in html and "c***@e***.com" in html  # each payload, masked for a marketer
    assert "ana@example.com" not in html and "cy@example.com" not in html
    assert f"POST {server.url}" in html
    assert "webhook-signature: ••••" in html  # the signature header is redacted
    assert "webhook-id: sync-" in html and "&quot;type&quot;:&quot;profile.upserted&quot;" in html
    assert "No consent for the destination&#x27;s purpose: 1" in html
    assert_no_secret(html)
    assert page.context["requests"][0]["requests"][0]["headers"]["webhook-signature"] == "••••"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    run = SyncRun.objects.get(sync=sync, is_dry_run=False)
    run.refresh_from_db()
    assert (run.status, run.planned, run.applied, run.triggered_by) == (
        "completed",
        2,
        2,
        f"user:{page.wsgi_request.user.username}",
    )
    assert len(server.accepted()) == 2
    html = client.get(response["Location"]).content.decode()
    assert "0 of 2 planned operations unapplied (0.0%)" in html
    assert 'data-testid="requests"' not in html and "ana@example.com" not in html  # real runs: no payloads
    listing = client.get(reverse("activations:sync_list")).content.decode()
    assert f"#{run.pk}</a>" in listing and "0 of 2 (0.0%)" in listing


def test_run_detail_filters_and_paginates_records(client, make_user, gold, webhook_destination, make_sync):
    sync = make_sync(gold, webhook_destination(UNREACHABLE, slug="hook"), slug="gold-hook")
    run = run_now(sync, dry_run=True)
    client.force_login(make_user("privacy_officer"))
    url = reverse("activations:run_detail", args=[run.pk])
    page = client.get(url, {"status": "skipped"})
    records = list(page.context["page"])
    assert [(record.status, record.skip_reason) for record in records] == [("skipped", "consent")]
    assert len(client.get(url, {"status": "dry_run"}).context["page"]) == 2
    assert len(client.get(url, {"skip_reason": "holdout"}).context["page"]) == 0
    assert f'href="/profiles/{records[0].profile_id}/"' in page.content.decode()
    assert "Replay failed records" not in page.content.decode()


def test_a_busy_sync_links_the_unfinished_run(client, make_user, gold, webhook_destination, make_sync):
    sync = make_sync(gold, webhook_destination(UNREACHABLE, slug="hook"), slug="gold-hook")
    pending = sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    client.force_login(make_user("integration_engineer"))
    response = client.post(reverse("activations:sync_run", args=["gold-hook"]), follow=True)
    [message] = messages_of(response)
    assert f'Run <a href="/sync-runs/{pending.pk}/">#{pending.pk}</a> of this sync is still pending' in message
    assert f'<a href="/sync-runs/{pending.pk}/">#{pending.pk}</a>' in response.content.decode()  # a real link
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_not_ready_sync_says_why(client, make_user, gold, webhook_destination, make_sync):
    make_sync(gold, webhook_destination(UNREACHABLE, slug="hook"), slug="gold-hook", is_active=False)
    client.force_login(make_user("marketer"))
    response = client.post(reverse("activations:sync_run", args=["gold-hook"]), follow=True)
    assert messages_of(response) == ["Sync cannot run: the sync is switched off."]


def test_replay_failed_records_from_the_run_page(
    client, make_user, gold, webhook_destination, make_sync, django_capture_on_commit_callbacks
):
    healthy = {"value": False}

    def responder(received):
        if healthy["value"] or "cy@" not in received.body.decode():
            return Reply(200, {})
        return Reply(422, {"error": "invalid plan"})

    with LocalDestination(responder) as server:
        sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
        run = run_now(sync)
        assert (run.applied, run.failed) == (1, 1)
        client.force_login(make_user("integration_engineer"))
        url = reverse("activations:run_detail", args=[run.pk])
        html = client.get(url, {"status": "failed"}).content.decode()
        assert "Replay failed records" in html and "HTTP 422" in html and "invalid plan" in html

        client.force_login(make_user("marketer"))
        assert client.post(reverse("activations:run_retry_failed", args=[run.pk])).status_code == 403

        client.force_login(make_user("integration_engineer"))
        healthy["value"] = True
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("activations:run_retry_failed", args=[run.pk]), follow=True)
        assert "1 failed record(s) queued to be sent again." in messages_of(response)
        run.refresh_from_db()
        assert (run.status, run.applied, run.failed) == ("completed", 2, 0)
        assert len(server.accepted()) == 3
        response = client.post(reverse("activations:run_retry_failed", args=[run.pk]), follow=True)
        assert "No failed records to replay." in messages_of(response)


def test_paused_run_can_be_run_anyway(
    client, make_user, gold, server, webhook_destination, make_sync, django_capture_on_commit_callbacks
):
    from profiles.models import Profile

    Profile.objects.update(merge_confidence=0.5)
    sync = make_sync(
        gold, webhook_destination(server.url, slug="hook"), slug="gold-hook", guard_max_low_confidence_share=0.1
    )
    paused = run_now(sync)
    assert paused.status == "paused"
    client.force_login(make_user("marketer"))
    html = client.get(reverse("activations:run_detail", args=[paused.pk])).content.decode()
    assert "Run anyway (override guards)" in html and "of members have merge confidence under 0.8" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("activations:run_resume", args=[paused.pk]))
    override = SyncRun.objects.exclude(pk=paused.pk).get(sync=sync)
    assert response["Location"] == reverse("activations:run_detail", args=[override.pk])
    override.refresh_from_db()
    assert override.ignore_guards and override.status == "completed"
    assert override.pause_reason.startswith("Guards overridden")
    assert override.skipped_reasons == {"consent": 1, "low_confidence": 2}


# -- reconciliation ---------------------------------------------------------------------------------


@pytest.fixture
def reconciled(gold, webhook_destination, make_sync):
    """A run with one applied and one refused operation, a dry run, and a destination with no runs."""

    def responder(received):
        return Reply(422, {"error": "bad"}) if "cy@" in received.body.decode() else Reply(200, {})

    with LocalDestination(responder) as server:
        sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
        run = run_now(sync)
        dry = run_now(sync, dry_run=True)
    webhook_destination(UNREACHABLE, slug="idle", name="Idle")
    return run, dry


def test_reconciliation_page(client, make_user, reconciled):
    run, dry = reconciled
    assert (run.planned, run.applied, run.failed, run.unapplied) == (2, 1, 1, 1)
    client.force_login(make_user("privacy_officer"))
    response = client.get(reverse("activations:reconciliation"))
    rows = {row["destination"].slug: row for row in response.context["destinations"]}
    assert {key: rows["hook"][key] for key in ("runs", "planned", "applied", "failed", "unapplied")} == {
        "runs": 1,
        "planned": 2,
        "applied": 1,
        "failed": 1,
        "unapplied": 1,
    }
    assert rows["hook"]["delta_percent"] == 50.0 and rows["idle"]["runs"] == 0
    assert [r.pk for r in response.context["runs"]] == [run.pk]  # dry runs are not reconciled
    html = response.content.decode()
    assert '<span class="badge warn">50.0%</span>' in html
    assert f"?records={run.pk}" in html


def test_reconciliation_csv_one_row_per_run(client, make_user, reconciled):
    run, _dry = reconciled
    client.force_login(make_user("marketer"))
    response = client.get(reverse("activations:reconciliation_csv"))
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="reconciliation.csv"'
    rows = list(csv.DictReader(io.StringIO(streamed(response))))
    [row] = rows
    assert row["run_id"] == str(run.pk) and row["sync"] == "gold-hook" and row["destination"] == "hook"
    assert row["segment_version"] == "1" and row["triggered_by"] == "test" and row["status"] == "completed"
    assert (row["planned"], row["applied"], row["failed"], row["skipped"]) == ("2", "1", "1", "1")
    assert (row["skipped_consent"], row["skipped_holdout"], row["unapplied"], row["delta"]) == ("1", "0", "1", "0.5000")
    assert row["created_at"] and row["finished_at"]


def test_reconciliation_csv_of_records_has_no_personal_data(client, make_user, reconciled):
    run, _dry = reconciled
    client.force_login(make_user("marketer"))
    response = client.get(reverse("activations:reconciliation_csv"), {"records": run.pk})
    text = streamed(response)
    assert "@example.com" not in text and "ana" not in text.lower()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "record_id",
        "run_id",
        "profile_id",
        "operation",
        "status",
        "skip_reason",
        "attempts",
        "status_code",
        "applied_at",
        "error",
    ]
    by_status = {row["status"]: row for row in rows}
    assert set(by_status) == {"applied", "failed", "skipped"}
    assert by_status["applied"]["applied_at"] and by_status["applied"]["status_code"] == "200"
    assert by_status["failed"]["status_code"] == "422" and "bad" in by_status["failed"]["error"]
    assert by_status["skipped"]["skip_reason"] == "consent"
    assert {row["run_id"] for row in rows} == {str(run.pk)}
    assert client.get(reverse("activations:reconciliation_csv"), {"records": "999999"}).status_code == 404


# -- runbook ----------------------------------------------------------------------------------------


@pytest.fixture
def configured(gold, webhook_destination, make_sync):
    hashed = webhook_destination(UNREACHABLE, slug="hook", name="Hashed hook", pii_mode="hashed")
    make_sync(gold, hashed, slug="gold-mirror", name="Gold mirror", mode="mirror", schedule_minutes=30)
    make_sync(gold, hashed, slug="gold-once", name="Gold once")
    trigger_save(
        name="Big order",
        slug="big-order",
        kind=Trigger.EVENT,
        destination=hashed,
        event_type="order.completed",
        where=[{"property": "total", "op": "gt", "value": 50}],
        template={"type": "thanks"},
        cap_count=2,
        cap_window_hours=24,
        quiet_start_hour=22,
        quiet_end_hour=8,
        default_timezone="Europe/Paris",
    )
    webhook_destination(
        UNREACHABLE, slug="plain", name="Plain hook", consent_purpose="", operations=["upsert", "message"]
    )


def test_runbook_page(client, make_user, configured):
    client.force_login(make_user("privacy_officer"))
    html = client.get(reverse("activations:runbook")).content.decode()
    assert "Hashed hook" in html and "Plain hook" in html
    assert "hashed (SHA-256 of the normalised value)" in html
    assert "a profile.deleted message with the idempotency key" in html
    assert "no consent purpose" in html
    assert_no_secret(html)


def test_runbook_download(client, make_user, configured):
    client.force_login(make_user("marketer"))
    response = client.get(reverse("activations:runbook_download"))
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="runbook.md"'
    text = response.content.decode()
    assert_no_secret(text)
    hashed, plain = text.split("## Plain hook")
    assert hashed.index("## Hashed hook") < hashed.index("`email` ← `identifier:email`")
    assert "- `email` ← `identifier:email`, hashed (SHA-256 of the normalised value) (idempotency key)" in hashed
    assert "- `plan` ← `trait:plan`, cleartext" in hashed
    assert "- Idempotency key: `email`" in hashed
    assert "- Batch size: 1 record per request; rate limit: 1000 requests/s" in hashed
    assert (
        "At most 3 attempts per record" in hashed and "exponential backoff with jitter, Retry-After honoured" in hashed
    )
    assert "- Deletion: a profile.deleted message with the idempotency key; the receiver deletes the person" in hashed
    assert (
        "- Consent withdrawal: consent purpose Email marketing (email_marketing): a withdrawal removes the person "
        "from every synced audience at once (a delete where the contract has no removal), recorded per destination "
        "on the Consent propagation page; every run and every send checks it again; triggers skip"
    ) in hashed
    assert "- Gold mirror (`gold-mirror`): segment Audience; Mirror: add, change and remove; every 30 minutes" in hashed
    assert "- Gold once (`gold-once`): segment Audience; Upsert: add and change, never remove; on demand" in hashed
    assert (
        "event order.completed where total gt 50; at most 2 per person on the webhook channel in 24 hours; "
        "quiet hours: 22:00–08:00 in the person's time zone (else Europe/Paris)"
    ) in hashed
    assert "- Deletion: not supported — handle manually" in plain
    assert "**WARNING: no consent purpose**" in plain
    assert "- `email` ← `identifier:email`, cleartext (idempotency key)" in plain


# -- triggers ---------------------------------------------------------------------------------------


def trigger_post(**overrides):
    data = {
        "name": "Big order",
        "slug": "big-order",
        "kind": "event",
        "destination": "hook",
        "segment": "",
        "event_type": "order.completed",
        "where": '[{"property": "total", "op": "gt", "value": 50}]',
        "template": '{"type": "order.thanks", "to": "{email}", "text": "Thanks {first_name}"}',
        "cap_count": "1",
        "cap_window_hours": "24",
        "quiet_start_hour": "",
        "quiet_end_hour": "",
        "default_timezone": "UTC",
        "holdout_percent": "0",
        "min_merge_confidence": "0.8",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_trigger_form_checks_the_template_against_the_contract(
    client, make_user, ingest, ingest_live, server, webhook_destination
):
    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    webhook_destination(server.url, slug="hook")
    client.force_login(make_user("marketer"))
    url = reverse("activations:trigger_new")

    outside = client.post(url, trigger_post(template='{"type": "thanks", "text": "Your shoe size is {shoe_size}"}'))
    assert outside.status_code == 400
    assert outside.context["form"].errors["template"] == ["fields outside Webhook's contract: shoe_size"]
    quiet = client.post(url, trigger_post(quiet_start_hour="22", where="{}"))
    assert quiet.context["form"].errors["where"] == ["A JSON list, [...]."]

    created = client.post(url, trigger_post())
    assert created.status_code == 302
    trigger = Trigger.objects.get(slug="big-order")
    assert trigger.template["text"] == "Thanks {first_name}" and trigger.owner.username.startswith("marketer")

    ingest_live(
        email="ana@example.com",
        event_type="order.completed",
        properties={"order_id": "o1", "total": 80, "currency": "EUR"},
    )
    assert len(server.accepted()) == 1
    html = client.get(reverse("activations:trigger_detail", args=["big-order"])).content.decode()
    assert 'data-testid="latency"' in html and "over 1 sent message" in html
    assert "<td>Sent</td><td>1</td>" in html
    assert " ms</td>" in html

    edit = reverse("activations:trigger_edit", args=["big-order"])
    response = client.post(edit, trigger_post(quiet_start_hour="22", quiet_end_hour=""))
    assert response.context["form"].errors["quiet_start_hour"] == ["give both quiet hours or neither"]
    assert client.post(edit, trigger_post(cap_count="3")).status_code == 302
    trigger.refresh_from_db()
    assert trigger.cap_count == 3
    assert "3 per 24 h" in client.get(reverse("activations:trigger_list")).content.decode()


# -- the sync_run command ---------------------------------------------------------------------------


def test_sync_run_command(gold, server, webhook_destination, make_sync):
    sync = make_sync(gold, webhook_destination(server.url, slug="hook"), slug="gold-hook")
    out = io.StringIO()
    call_command("sync_run", "gold-hook", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "gold-hook: dry run #" in text and "(dry run: nothing sent)" in text
    assert "planned: 2 (upsert: 2)" in text and server.requests == []

    out = io.StringIO()
    call_command("sync_run", "gold-hook", stdout=out)
    text = out.getvalue()
    assert "status: completed" in text
    assert "applied: 2" in text and "failed: 0" in text
    assert "skipped: 1\n  consent: 1 (No consent for the destination's purpose)" in text
    assert "unapplied: 0 of 2 (delta 0.0%)" in text and "seconds: " in text
    assert len(server.accepted()) == 2
    run = SyncRun.objects.filter(sync=sync, is_dry_run=False).get()
    assert run.triggered_by == "command"

    with pytest.raises(CommandError, match="no sync 'nope'"):
        call_command("sync_run", "nope", stdout=io.StringIO())
    sync_run_start(sync=sync, triggered_by="test", enqueue=False)
    with pytest.raises(CommandError, match="gold-hook is busy: run \\d+ is still pending"):
        call_command("sync_run", "gold-hook", stdout=io.StringIO())


def test_sync_run_command_fails_on_a_pause_or_when_not_ready(gold, server, webhook_destination, make_sync):
    from profiles.models import Profile

    Profile.objects.update(merge_confidence=0.5)
    destination = webhook_destination(server.url, slug="hook")
    make_sync(gold, destination, slug="guarded", guard_max_low_confidence_share=0.1)
    out = io.StringIO()
    with pytest.raises(CommandError, match="paused by a guard: .*merge confidence under 0.8"):
        call_command("sync_run", "guarded", stdout=out)
    assert "status: paused" in out.getvalue()
    out = io.StringIO()
    call_command("sync_run", "guarded", "--ignore-guards", stdout=out)
    assert "guards: Guards overridden" in out.getvalue()
    make_sync(gold, destination, slug="off", is_active=False)
    with pytest.raises(CommandError, match="off cannot run: the sync is switched off"):
        call_command("sync_run", "off", stdout=io.StringIO())
    assert SyncRecord.objects.filter(status="applied").count() == 0


# -- admin ------------------------------------------------------------------------------------------


def test_admin_hides_secrets_and_keeps_records_read_only(
    client, django_user_model, everything, django_capture_on_commit_callbacks
):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123-secret")
    client.force_login(admin)
    run = run_now(everything["sync"], dry_run=True)
    destination = everything["destination"]
    page = client.get(reverse("admin:activations_destination_change", args=[destination.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="secrets"' not in html and "signing_secret" in html
    assert_no_secret(html)
    for model in ("syncrun", "syncrecord", "syncstate", "syncsnapshot", "triggersend"):
        assert client.get(reverse(f"admin:activations_{model}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:activations_{model}_add")).status_code == 403
    record = SyncRecord.objects.filter(run=run, status="dry_run").first()
    record_page = client.get(reverse("admin:activations_syncrecord_change", args=[record.pk])).content.decode()
    assert "@example.com" not in record_page and 'name="status"' not in record_page
    for model in ("sync", "trigger"):
        assert client.get(reverse(f"admin:activations_{model}_changelist")).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:activations_sync_changelist"),
            {"action": "dry_run", "_selected_action": [everything["sync"].pk]},
            follow=True,
        )
    assert any("dry run #" in message for message in messages_of(response))
    assert SyncRun.objects.filter(sync=everything["sync"], is_dry_run=True, status="completed").count() == 2

    # The admin form validates the contract like the pages do.
    data = {
        "name": "Hook",
        "slug": "hook",
        "kind": "webhook",
        "base_url": UNREACHABLE,
        "settings": "{}",
        "fields": '[{"name": "email", "source": "identifier:email"}]',
        "idempotency_key": "phone",
        "operations": '["upsert"]',
        "consent_purpose": "",
        "pii_mode": "cleartext",
        "rate_limit_per_second": "10",
        "batch_size": "1",
        "max_attempts": "3",
        "timeout_seconds": "5",
        "is_active": "on",
    }
    response = client.post(reverse("admin:activations_destination_change", args=[destination.pk]), data)
    assert response.status_code == 200 and "must be one of the contract" in response.content.decode()
    data["idempotency_key"] = "email"
    response = client.post(reverse("admin:activations_destination_change", args=[destination.pk]), data)
    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.secret_values == {"signing_secret": WEBHOOK_SECRET}  # untouched by the admin


def test_an_owner_is_assigned_on_the_edit_page_and_defaults_to_the_creator(client, make_user, webhook_destination):
    destination = webhook_destination(UNREACHABLE, slug="hook")
    engineer, colleague = make_user("integration_engineer"), make_user("integration_engineer")
    make_user("marketer", is_active=False)  # deactivated accounts are not offered
    client.force_login(engineer)
    url = reverse("activations:destination_edit", args=["hook"])
    form = client.get(url).context["form"]
    assert set(form.fields["owner"].queryset) == {engineer, colleague}
    data = destination_post(name="Hook", secrets="", fields=form["fields"].value(), owner=str(colleague.pk))
    assert client.post(url, data).status_code == 302
    destination.refresh_from_db()
    assert destination.owner == colleague  # the pilot gates' owners check reads this
