"""Pilot gates and handoff pack pages and API: who sees what, what a sign-off or settings change writes."""

import io
import zipfile

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp_site.handoff import FILES
from cdp_site.models import AuditEntry, PilotSettings, PilotSignoff

pytestmark = pytest.mark.django_db

M, GS, PO, IE = "marketer", "guest_services", "privacy_officer", "integration_engineer"


@pytest.fixture
def page(client, make_user):
    def login(role):
        client.force_login(make_user(role))
        return client

    return login


@pytest.mark.parametrize(
    ("role", "can_sign", "can_configure"),
    [(M, False, False), (PO, True, False), (IE, True, True)],
)
def test_the_gates_page_shows_every_gate_and_only_the_forms_a_role_may_use(page, role, can_sign, can_configure):
    response = page(role).get(reverse("pilot:gates"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Verdict:" in html and "No-go" in html
    for key in ("owners", "contracts", "identity_coverage", "canary_activations", "reconciliation", "suppression"):
        assert f'data-testid="gate-{key}"' in html
    assert "No identity metrics snapshot has been taken" in html
    assert "How to fix:" in html
    assert ('data-testid="signoff-form"' in html) is can_sign
    assert ('data-testid="settings-form"' in html) is can_configure


def test_guest_services_cannot_open_the_gates(page):
    assert page(GS).get(reverse("pilot:gates")).status_code == 403


def test_a_gates_page_of_a_ready_pilot_says_go(ready_pilot, page):
    html = page(M).get(reverse("pilot:gates")).content.decode()
    assert 'Verdict: <span class="badge ok">Go</span>' in html
    assert "How to fix:" not in html
    assert f'href="/sync-runs/{ready_pilot.run.pk}/"' in html


def test_a_privacy_officer_records_a_signoff_and_it_is_audited(page):
    client = page(PO)
    response = client.post(
        reverse("pilot:signoff_new"),
        {"gate": "suppression", "decision": "signed", "document_url": "https://wiki.example.org/s", "note": "reviewed"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("pilot:gates")
    signoff = PilotSignoff.objects.get()
    assert (signoff.gate, signoff.decision, signoff.note) == ("suppression", "signed", "reviewed")
    assert signoff.signed_by.startswith("user:privacy_officer")
    entry = AuditEntry.objects.get(action="pilot.signoff.signed")
    assert (entry.actor, entry.target_id, entry.detail) == (
        signoff.signed_by,
        str(signoff.pk),
        {"gate": "suppression", "has_document": True},
    )
    html = client.get(reverse("pilot:gates")).content.decode()
    assert "https://wiki.example.org/s" in html and "reviewed" in html


@pytest.mark.parametrize(
    "data",
    [
        {"gate": "rollback", "decision": "signed", "document_url": "", "note": "  "},
        {"gate": "nothing", "decision": "signed", "note": "x"},
        {"gate": "rollback", "decision": "signed", "document_url": "not a url"},
    ],
)
def test_an_invalid_signoff_writes_nothing(page, data):
    response = page(IE).post(reverse("pilot:signoff_new"), data)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not PilotSignoff.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="pilot.").exists()


def test_a_marketer_cannot_sign_off(page):
    response = page(M).post(reverse("pilot:signoff_new"), {"gate": "rollback", "decision": "signed", "note": "x"})
    assert response.status_code == 403
    assert not PilotSignoff.objects.exists()


def test_an_integration_engineer_changes_the_thresholds(page):
    client = page(IE)
    response = client.post(
        reverse("pilot:settings"), {"coverage_percent": "75", "max_delta_percent": "0.5", "window_hours": "72"}
    )
    assert response.status_code == 302
    settings = PilotSettings.objects.get()
    assert (settings.identity_coverage_threshold, settings.max_reconciliation_delta, settings.window_hours) == (
        0.75,
        0.005,
        72,
    )
    assert settings.updated_by.startswith("user:integration_engineer")
    assert AuditEntry.objects.get(action="pilot.settings").detail["changed"]["window_hours"] == {"from": 48, "to": 72}
    html = client.get(reverse("pilot:gates")).content.decode()
    assert "Reconciliation clean for the last 72 hours" in html

    response = client.post(
        reverse("pilot:settings"), {"coverage_percent": "120", "max_delta_percent": "1", "window_hours": "0"}
    )
    assert response.status_code == 400
    assert PilotSettings.objects.get().window_hours == 72


def test_a_privacy_officer_cannot_change_the_thresholds(page):
    response = page(PO).post(
        reverse("pilot:settings"), {"coverage_percent": "10", "max_delta_percent": "50", "window_hours": "1"}
    )
    assert response.status_code == 403
    assert PilotSettings.objects.get().identity_coverage_threshold == 0.6


def test_the_handoff_page_and_download_for_integration_engineers(page):
    client = page(IE)
    html = client.get(reverse("pilot:handoff")).content.decode()
    for name in FILES:
        assert name in html
    assert reverse("pilot:handoff_download") in html
    response = client.get(reverse("pilot:handoff_download"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    filename = f"cdp-handoff-pack-{timezone.localdate():%Y-%m-%d}.zip"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == list(FILES)
    entry = AuditEntry.objects.get(action="export.handoff_pack")
    assert entry.actor.startswith("user:integration_engineer") and entry.detail["files"] == list(FILES)


@pytest.mark.parametrize("role", [M, GS, PO])
def test_other_roles_get_neither_the_handoff_page_nor_the_pack(page, role):
    client = page(role)
    assert client.get(reverse("pilot:handoff")).status_code == 403
    assert client.get(reverse("pilot:handoff_download")).status_code == 403
    assert not AuditEntry.objects.filter(action="export.handoff_pack").exists()


def test_the_gates_api(api, ready_pilot):
    response = api(M).get("/api/v1/pilot/gates/")
    assert response.status_code == 200
    body = response.json()
    assert (body["verdict"], body["passed"]) == ("go", True)
    assert body["settings"]["window_hours"] == 48
    assert [gate["key"] for gate in body["gates"]] == [
        "owners",
        "contracts",
        "identity_coverage",
        "canary_activations",
        "reconciliation",
        "suppression",
        "rollback",
    ]
    owners = body["gates"][0]
    assert owners["passed"] is True and owners["fix"]
    assert {
        "text": "Destination Hook (hook): owner olive",
        "url": "/destinations/hook/",
        "is_problem": False,
    } in owners["evidence"]
    assert api(GS).get("/api/v1/pilot/gates/").status_code == 403


def test_the_gates_api_refuses_anonymous_callers(client):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/pilot/gates/").status_code == 401
    assert APIClient().get("/api/v1/pilot/handoff/").status_code == 401


def test_the_handoff_api(api):
    response = api(IE).get("/api/v1/pilot/handoff/", HTTP_ACCEPT="application/zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.namelist() == list(FILES)
    assert AuditEntry.objects.get(action="export.handoff_pack").actor.startswith("api:integration_engineer")
    for role in (M, PO):
        assert api(role).get("/api/v1/pilot/handoff/").status_code == 403
    assert AuditEntry.objects.filter(action="export.handoff_pack").count() == 1


def test_the_menu_links_both_pages_for_integration_engineers_only_gates_for_marketers(page):
    html = page(IE).get(reverse("pilot:gates")).content.decode()
    assert f'href="{reverse("pilot:handoff")}"' in html
    html = page(M).get(reverse("pilot:gates")).content.decode()
    assert f'href="{reverse("pilot:gates")}"' in html and f'href="{reverse("pilot:handoff")}"' not in html
