"""The audit log: staff actions write an entry (ids and names, never personal data or secrets), and
privacy officers search it on a page and through the API. Nothing changes or removes an entry."""

import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from activations.destinations import destination_save, destination_test
from activations.models import Destination, Sync, SyncRun
from cdp_site.audit import audit_record
from cdp_site.models import AuditEntry
from identity.models import IdentityLink, Merge
from identity.services import IdentityActionError, link_approve, profiles_link
from profiles.processing import raw_events_process
from segments.services import segment_create
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UNREACHABLE = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _roles(roles):
    """Every test here reads the current role permissions (tests/conftest.py `roles`)."""


def entries(action=None) -> list[AuditEntry]:
    rows = AuditEntry.objects.order_by("id")
    return list(rows.filter(action=action) if action else rows)


def assert_clean(entry: AuditEntry, *secrets: str) -> None:
    text = entry.summary + json.dumps(entry.detail)
    for secret in secrets:
        assert secret not in text, secret


@pytest.fixture
def pending(send):
    """A pending link between Ada's email profile and her phone profile."""
    send(event(ids=[("email", "ada@example.com")], traits={"first_name": "Ada"}))
    send(event(ids=[("phone", "+14155550100")], traits={"first_name": "Ada"}))
    raw_events_process()
    outcome = profiles_link(
        profile_a_id=profile_of("email", "ada@example.com").pk,
        profile_b_id=profile_of("phone", "+14155550100").pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.7,
        evidence={"match_run_id": 1},
        activate=False,
        actor="rule:probabilistic",
    )
    assert entries() == []  # the matcher's proposals are not staff actions
    return IdentityLink.objects.get(pk=outcome.link_id)


@pytest.fixture
def destination(db):
    return destination_save(
        name="Hook",
        slug="hook",
        kind="webhook",
        base_url=UNREACHABLE,
        fields=[{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}],
        idempotency_key="email",
        operations=["upsert"],
        consent_purpose="email_marketing",
        pii_mode="cleartext",
        secrets={"signing_secret": SECRET},
        actor="user:ivy",
    )


# -- what writes an entry -------------------------------------------------------------------------


def test_approving_on_the_review_page_is_logged(client, make_user, pending):
    client.force_login(make_user("guest_services", username="gina"))
    client.post(reverse("identity:review_decide"), {"links": [pending.pk], "decision": "approve", "note": "same"})
    merge = Merge.objects.get()
    [entry] = entries()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
        "user:gina",
        "merge.approve",
        "identity.identitylink",
        str(pending.pk),
    )
    assert entry.detail == {
        "link_id": pending.pk,
        "merge_id": merge.pk,
        "survivor_id": merge.survivor_id,
        "absorbed_id": merge.absorbed_id,
    }
    assert_clean(entry, "ada@example.com", "+14155550100", "Ada")


def test_rejecting_through_the_api_is_logged(api, pending):
    client = api("guest_services")
    assert client.post(f"/api/v1/identity-links/{pending.pk}/reject/", {"note": "different"}).status_code == 200
    [entry] = entries()
    assert (entry.actor, entry.action, entry.target_id) == (f"user:{client.username}", "merge.reject", str(pending.pk))
    assert entry.detail["profile_ids"] == sorted(
        [profile_of("email", "ada@example.com").pk, profile_of("phone", "+14155550100").pk]
    )


def test_a_refused_decision_writes_nothing(pending):
    link_approve(link_id=pending.pk, actor="user:gina")
    with pytest.raises(IdentityActionError):
        link_approve(link_id=pending.pk, actor="user:gina")
    assert [entry.action for entry in entries()] == ["merge.approve"]


def test_unmerge_from_the_page_and_the_api_is_logged_without_the_reason(client, api, make_user, pending):
    merge = link_approve(link_id=pending.pk, actor="user:gina")
    client.force_login(make_user("guest_services", username="gus"))
    client.post(reverse("identity:merge_unmerge", args=[merge.pk]), {"reason": "Ada's sister, not Ada"})
    [entry] = entries("merge.unmerge")
    unmerge = merge.unmerge
    assert (entry.actor, entry.target_type, entry.target_id) == ("user:gus", "identity.merge", str(merge.pk))
    assert entry.detail == {
        "merge_id": merge.pk,
        "unmerge_id": unmerge.pk,
        "restored_id": unmerge.restored_id,
        "remaining_id": unmerge.remaining_id,
        "split_off": [],
        "links_rejected": 1,
    }
    assert_clean(entry, "sister")
    # Again through the API: refused (already undone), nothing more logged.
    assert api("guest_services").post(f"/api/v1/merges/{merge.pk}/unmerge/", {}).status_code == 409
    assert len(entries("merge.unmerge")) == 1


def test_unmerge_through_the_api_is_logged(api, pending):
    merge = link_approve(link_id=pending.pk, actor="user:gina")
    client = api("guest_services")
    assert client.post(f"/api/v1/merges/{merge.pk}/unmerge/", {"reason": "wrong"}).status_code == 201
    [entry] = entries("merge.unmerge")
    assert entry.actor == f"user:{client.username}" and entry.target_id == str(merge.pk)


def test_unmerge_from_the_admin_is_logged(client, django_user_model, pending):
    merge = link_approve(link_id=pending.pk, actor="user:gina")
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-123-secret"))
    data = {"action": "unmerge_selected", "_selected_action": [merge.pk], "reason": "wrong"}
    assert client.post(reverse("admin:identity_merge_changelist"), data).status_code == 302
    [entry] = entries("merge.unmerge")
    assert (entry.actor, entry.target_id) == ("user:root", str(merge.pk))


def test_a_manual_link_is_logged(send):
    send(event(ids=[("email", "bo@example.com")]))
    send(event(ids=[("user_id", "bo-1")]))
    raw_events_process()
    a, b = profile_of("email", "bo@example.com").pk, profile_of("user_id", "bo-1").pk
    outcome = profiles_link(
        profile_a_id=a,
        profile_b_id=b,
        kind=IdentityLink.MANUAL,
        rule="manual",
        confidence=1.0,
        evidence={"by": "user:gina"},
        activate=True,
        actor="user:gina",
    )
    [entry] = entries()
    assert (entry.actor, entry.action, entry.target_type) == ("user:gina", "merge.link", "identity.identitylink")
    assert entry.detail == {
        "profile_ids": sorted([a, b]),
        "outcome": "merged",
        "link_id": outcome.link_id,
        "merge_id": outcome.merge_id,
    }


def test_destination_create_change_secrets_and_test_are_logged_by_name(destination):
    created = entries()
    assert [(e.actor, e.action, e.target_id) for e in created] == [
        ("user:ivy", "destination.create", str(destination.pk))
    ]
    assert created[0].detail["secrets"] == ["signing_secret"]
    assert "base_url" in created[0].detail["fields"]

    destination_save(destination=destination, name="Hook 2", batch_size=5, secrets={}, actor="user:ivy")
    destination_save(
        destination=Destination.objects.get(pk=destination.pk),
        secrets={"signing_secret": "whsec_bmV3LXNlY3JldC12YWx1ZS0xMjM0NTY3ODkw"},
        name="Hook 2",
        actor="api:ivy",
    )
    destination_save(destination=Destination.objects.get(pk=destination.pk), name="Hook 2", actor="user:ivy")
    ok, _message = destination_test(Destination.objects.get(pk=destination.pk), actor="user:ivy")
    assert [(e.actor, e.action, e.detail) for e in entries()[1:]] == [
        ("user:ivy", "destination.change", {"fields": ["batch_size", "name"]}),
        ("api:ivy", "destination.secrets", {"secrets": ["signing_secret"]}),
        ("user:ivy", "destination.test", {"ok": False}),  # the unchanged save wrote nothing
    ]
    assert ok is False
    for entry in entries():
        assert_clean(entry, SECRET, "bmV3LXNlY3JldC12YWx1ZS0xMjM0NTY3ODkw", UNREACHABLE)


def test_editing_a_destination_on_its_page_logs_the_fields_that_changed(client, make_user, destination):
    client.force_login(make_user("integration_engineer"))
    page = client.get(reverse("activations:destination_edit", args=["hook"]))
    data = {}
    for name, field in page.context["form"].fields.items():
        value = page.context["form"].initial.get(name, field.initial)
        if value is None:
            continue
        data[name] = value if isinstance(value, list | str | int | bool) else json.dumps(value)
    data.update(
        {
            "name": "Renamed hook",
            "settings": "{}",
            "fields": json.dumps(destination.fields),
            "secrets": "",
            "operations": ["upsert"],
            "is_active": "on",
        }
    )
    response = client.post(reverse("activations:destination_edit", args=["hook"]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    [entry] = entries("destination.change")
    assert entry.detail == {"fields": ["name"]}


def test_a_destination_created_on_its_page_is_logged_under_its_owner(client, make_user):
    client.force_login(make_user("integration_engineer", username="ivy"))
    data = {
        "kind": "webhook",
        "name": "Orders hook",
        "slug": "orders-hook",
        "base_url": UNREACHABLE,
        "settings": "{}",
        "secrets": f"signing_secret={SECRET}",
        "fields": '[{"name": "email", "source": "identifier:email"}]',
        "idempotency_key": "email",
        "operations": ["upsert"],
        "consent_purpose": "email_marketing",
        "pii_mode": "cleartext",
        "rate_limit_per_second": "20",
        "batch_size": "1",
        "max_attempts": "5",
        "timeout_seconds": "5",
        "is_active": "on",
    }
    assert client.post(reverse("activations:destination_new"), data).status_code == 302
    [entry] = entries()
    assert (entry.actor, entry.action, entry.detail["secrets"]) == (
        "user:ivy",
        "destination.create",
        ["signing_secret"],
    )
    assert_clean(entry, SECRET)


def test_reconciliation_exports_are_logged(client, make_user, destination):
    segment = segment_create(
        slug="gold",
        name="Gold",
        definition={"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
        note="",
        author="t",
    )
    sync = Sync.objects.create(name="Gold", slug="gold-hook", segment=segment, destination=destination, mode="upsert")
    run = SyncRun.objects.create(sync=sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.COMPLETED)
    client.force_login(make_user("marketer", username="mia"))
    b"".join(client.get(reverse("activations:reconciliation_csv"), {"days": "7"}).streaming_content)
    b"".join(client.get(reverse("activations:reconciliation_csv"), {"records": run.pk}).streaming_content)
    assert [(e.actor, e.action, e.target_type, e.detail) for e in entries("export.reconciliation_csv")] == [
        ("user:mia", "export.reconciliation_csv", "", {"days": 7}),
        ("user:mia", "export.reconciliation_csv", "activations.syncrun", {"run_id": run.pk}),
    ]


def test_segments_export_is_logged(db, tmp_path):
    segment_create(
        slug="gold",
        name="Gold",
        definition={"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
        note="",
        author="t",
    )
    call_command("segments", "export", str(tmp_path / "audiences"))
    [entry] = entries()
    assert (entry.actor, entry.action, entry.detail) == (
        "command:segments export",
        "export.segments",
        {"count": 1, "slugs": ["gold"]},
    )


# -- the page -------------------------------------------------------------------------------------


@pytest.fixture
def log(monkeypatch):
    """Entries on three days, by several people."""

    def at(day):
        moment = datetime(2026, 3, day, 12, 0, tzinfo=UTC)
        monkeypatch.setattr(timezone, "now", lambda: moment)

    at(1)
    first = audit_record(actor="user:gina", action="merge.approve", summary="Approved link 4", link_id=4)
    at(2)
    second = audit_record(actor="user:gus", action="merge.unmerge", summary="Unmerged merge 9", merge_id=9)
    third = audit_record(actor="api:ivy", action="destination.secrets", summary="Changed secrets of destination hook")
    at(3)
    fourth = audit_record(actor="user:pia", action="pii.reveal", summary="Revealed personal data of profile #12")
    monkeypatch.undo()
    return [first, second, third, fourth]


def ids(response) -> list[int]:
    return [entry.pk for entry in response.context["page"]]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, [3, 2, 1, 0]),
        ({"actor": "gus"}, [1]),
        ({"actor": "user:"}, [3, 1, 0]),
        ({"action": "merge."}, [1, 0]),
        ({"action": "pii.reveal"}, [3]),
        ({"q": "secrets hook"}, [2]),
        ({"q": "approved"}, [0]),
        ({"since": "2026-03-02"}, [3, 2, 1]),
        ({"until": "2026-03-02"}, [2, 1, 0]),
        ({"since": "2026-03-02", "until": "2026-03-02", "actor": "ivy"}, [2]),
    ],
)
def test_the_page_searches_and_filters(client, make_user, log, params, expected):
    client.force_login(make_user("privacy_officer"))
    response = client.get(reverse("audit:log"), params)
    assert response.status_code == 200
    assert ids(response) == [log[index].pk for index in expected]


def test_the_page_filters_by_target(client, make_user, pending):
    link_approve(link_id=pending.pk, actor="user:gina")
    audit_record(actor="user:gus", action="merge.reject", summary="other")
    client.force_login(make_user("privacy_officer"))
    response = client.get(reverse("audit:log"), {"target_type": "identity.identitylink", "target_id": pending.pk})
    assert [entry.action for entry in response.context["page"]] == ["merge.approve"]


def test_the_page_shows_entries_paginates_and_answers_htmx_with_the_rows(client, make_user, log, monkeypatch):
    client.force_login(make_user("privacy_officer"))
    html = client.get(reverse("audit:log")).content.decode()
    assert "4 entries" in html and "user:gina" in html and "<code>merge.unmerge</code>" in html
    assert "merge_id: 9" in html and 'hx-target="#results"' in html
    monkeypatch.setattr("cdp_site.views_audit.PAGE_SIZE", 2)
    response = client.get(reverse("audit:log"), {"actor": "user:"})
    assert ids(response) == [log[3].pk, log[1].pk]
    assert 'href="?actor=user%3A&amp;page=2"' in response.content.decode()
    assert ids(client.get(reverse("audit:log"), {"actor": "user:", "page": 2})) == [log[0].pk]
    fragment = client.get(reverse("audit:log"), {"action": "merge."}, HTTP_HX_REQUEST="true")
    assert [t.name for t in fragment.templates][0] == "cdp_site/_audit_rows.html"
    assert "<html" not in fragment.content.decode()


def test_the_page_queries_do_not_grow_with_the_entries(client, make_user, log, django_assert_max_num_queries):
    client.force_login(make_user("privacy_officer"))
    url = reverse("audit:log")
    client.get(url)
    with CaptureQueriesContext(connection) as four:
        client.get(url)
    for number in range(20):
        audit_record(actor="user:gina", action="merge.approve", summary=f"Approved link {number}", link_id=number)
    with django_assert_max_num_queries(len(four.captured_queries)):
        client.get(url)


@pytest.mark.parametrize(
    "role, status",
    [("marketer", 403), ("guest_services", 403), ("integration_engineer", 403), ("privacy_officer", 200)],
)
def test_only_privacy_officers_read_the_log_and_see_it_in_the_menu(client, make_user, role, status):
    client.force_login(make_user(role))
    assert client.get(reverse("audit:log")).status_code == status
    menu = client.get(reverse("home")).content.decode()
    assert (f'href="{reverse("audit:log")}"' in menu) == (status == 200)


def test_anonymous_users_go_to_login(client):
    response = client.get(reverse("audit:log"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# -- the API --------------------------------------------------------------------------------------


def test_the_api_lists_with_the_same_filters(api, log):
    client = api("privacy_officer")
    body = client.get("/api/v1/audit-log/").json()
    assert [row["id"] for row in body["results"]] == [entry.pk for entry in reversed(log)]
    assert body["results"][-1] == {
        "id": log[0].pk,
        "at": "2026-03-01T12:00:00Z",
        "actor": "user:gina",
        "action": "merge.approve",
        "target_type": "",
        "target_id": "",
        "summary": "Approved link 4",
        "detail": {"link_id": 4},
    }
    filtered = client.get("/api/v1/audit-log/", {"action": "merge.", "since": "2026-03-02"}).json()["results"]
    assert [row["id"] for row in filtered] == [log[1].pk]
    assert [row["id"] for row in client.get("/api/v1/audit-log/", {"q": "profile"}).json()["results"]] == [log[3].pk]
    assert client.get(f"/api/v1/audit-log/{log[2].pk}/").json()["actor"] == "api:ivy"


def test_the_api_is_read_only_and_for_privacy_officers(api, log):
    client = api("privacy_officer")
    path = f"/api/v1/audit-log/{log[0].pk}/"
    # No role holds add/change/delete on entries, and the viewset has no write methods.
    for response in (
        client.post("/api/v1/audit-log/", {"action": "x"}),
        client.put(path, {"action": "x"}),
        client.patch(path, {"action": "x"}),
        client.delete(path),
    ):
        assert response.status_code in (403, 405)
    assert AuditEntry.objects.count() == 4
    for role in ("marketer", "guest_services", "integration_engineer"):
        assert api(role).get("/api/v1/audit-log/").status_code == 403
