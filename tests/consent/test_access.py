"""Access requests: everything held about a person, as a downloadable ZIP of JSON files."""

import io
import json
import zipfile
from pathlib import Path

import pytest

from activations.local_destination import LocalDestination
from activations.syncs import sync_run_execute, sync_run_start
from cdp_site.models import AuditEntry
from consent.models import PrivacyRequest
from consent.requests import privacy_request_create, privacy_request_run
from identity.models import Merge
from tests.activations import conftest as activation_fixtures

pytestmark = pytest.mark.django_db

ingest = activation_fixtures.ingest
audience = activation_fixtures.audience
make_sync = activation_fixtures.make_sync
webhook_destination = activation_fixtures.webhook_destination

EMAIL = "ada.lovelace@example.org"
PHONE = "+442079460958"


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path):
    settings.PRIVACY_EXPORT_DIR = tmp_path / "access"
    return settings.PRIVACY_EXPORT_DIR


@pytest.fixture
def ada(ingest, audience, webhook_destination, make_sync):
    """Ada: two profiles (email, then phone) joined by a third event, an order, a segment, a sync."""
    ingest(email=EMAIL, traits={"first_name": "Ada", "plan": "gold"}, consent={"email_marketing": True})
    ingest(phone=PHONE, traits={"last_name": "Lovelace"})
    profile_id = ingest(
        email=EMAIL,
        phone=PHONE,
        event_type="order.completed",
        properties={"order_id": "o-1", "total": 42, "currency": "GBP"},
    )
    assert Merge.objects.count() == 1
    ingest(email="someone.else@example.org", traits={"first_name": "Other", "plan": "gold"})
    with LocalDestination() as server:  # up for the whole test: a deletion tells it to forget Ada
        sync = make_sync(audience(), webhook_destination(server.url))
        run = sync_run_execute(sync_run_start(sync=sync, triggered_by="test", enqueue=False).pk)
        assert run.applied == 1
        yield profile_id


def access_request(identifiers, regulation="gdpr"):
    request = privacy_request_create(
        kind="access", regulation=regulation, identifiers=identifiers, actor="test", enqueue=False
    )
    return privacy_request_run(request_id=request.pk)


def read_archive(content: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist()}


def test_access_archive_holds_everything_about_the_person_and_downloads_are_audited(ada, client, make_user):
    request = access_request(["phone:+44 20 7946 0958"])
    assert request.status == PrivacyRequest.COMPLETED, request.error
    assert [step.name for step in request.steps.all()] == ["find_profiles", "export"]
    assert len(request.profiles_found) == 2  # the survivor and the profile merged into it
    assert Path(request.archive_path).is_file() and request.archive_bytes > 0

    officer = make_user("privacy_officer")
    client.force_login(officer)
    page = client.get(f"/privacy-requests/{request.pk}/")
    assert page.status_code == 200 and f"/privacy-requests/{request.pk}/archive/" in page.content.decode()
    assert not AuditEntry.objects.filter(action="privacy.access_export").exists()

    response = client.get(f"/privacy-requests/{request.pk}/archive/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="access-request-{request.pk}.zip"'
    files = read_archive(b"".join(response.streaming_content))
    assert set(files) == {
        "manifest.json",
        "profiles.json",
        "identifiers.json",
        "traits.json",
        "computed_traits.json",
        "events.json",
        "consent.json",
        "segments.json",
        "sync_records.json",
        "trigger_sends.json",
        "merges.json",
    }
    assert sorted((item["type"], item["value"]) for item in files["identifiers.json"]) == [
        ("email", EMAIL),
        ("phone", PHONE),
    ]
    survivor = next(profile for profile in files["profiles.json"] if profile["status"] == "active")
    assert survivor["traits"] == {"first_name": "Ada", "last_name": "Lovelace", "plan": "gold"}
    assert {(t["key"], t["value"]) for t in files["traits.json"]} == {
        ("first_name", "Ada"),
        ("plan", "gold"),
        ("last_name", "Lovelace"),
    }
    assert sorted(event["type"] for event in files["events.json"]) == [
        "order.completed",
        "profile.identified",
        "profile.identified",
    ]
    order = next(event for event in files["events.json"] if event["type"] == "order.completed")
    assert order["properties"] == {"order_id": "o-1", "total": 42, "currency": "GBP"}
    assert [(c["purpose"], c["is_granted"]) for c in files["consent.json"]] == [("email_marketing", True)]
    assert [m["segment__slug"] for m in files["segments.json"]] and files["segments.json"][0]["exited_at"] is None
    [record] = files["sync_records.json"]
    assert record["operation"] == "upsert" and record["status"] == "applied" and "payload" not in record
    assert len(files["merges.json"]) == 1
    assert files["manifest.json"]["profiles"] == request.profiles_found
    # Nobody else's data.
    assert "someone.else" not in json.dumps(files)

    entry = AuditEntry.objects.get(action="privacy.access_export")
    assert (entry.actor, entry.target_id) == (f"user:{officer.username}", str(request.pk))
    assert EMAIL not in json.dumps(entry.detail) + entry.summary


def test_archive_over_the_api_and_denied_to_other_roles(ada, api):
    request = access_request([f"email:{EMAIL}"], regulation="ccpa")
    officer = api("privacy_officer")
    response = officer.get(f"/api/v1/privacy-requests/{request.pk}/archive/")
    assert response.status_code == 200
    assert read_archive(b"".join(response.streaming_content))["identifiers.json"]
    assert AuditEntry.objects.filter(action="privacy.access_export", actor=f"api:{officer.username}").count() == 1
    for role in ("marketer", "guest_services", "integration_engineer"):
        assert api(role).get(f"/api/v1/privacy-requests/{request.pk}/archive/").status_code == 403
    assert AuditEntry.objects.filter(action="privacy.access_export").count() == 1


def test_an_access_request_for_someone_unknown_completes_with_an_empty_archive(db):
    request = access_request(["email:nobody@example.org"])
    assert request.status == "completed" and request.profiles_found == []
    with zipfile.ZipFile(request.archive_path) as archive:
        assert json.loads(archive.read("identifiers.json")) == []


def test_a_later_deletion_removes_the_archive_and_the_request_identifiers(ada, client, make_user):
    access = access_request([f"email:{EMAIL}"])
    archive = Path(access.archive_path)
    assert archive.is_file() and access.subject
    deletion = privacy_request_create(
        kind="deletion", regulation="gdpr", identifiers=[f"phone:{PHONE}"], actor="test", enqueue=False
    )
    deletion = privacy_request_run(request_id=deletion.pk)
    assert deletion.status == "completed", deletion.error
    assert deletion.steps.get(name="purge_requests").detail == {"requests": 1, "archives_deleted": 1}
    access.refresh_from_db()
    assert not archive.exists()
    assert (access.subject, access.found_identifiers, access.archive_path) == ("", "", "")
    assert [item["type"] for item in access.subject_hashes] == ["email"]
    client.force_login(make_user("privacy_officer"))
    response = client.get(f"/privacy-requests/{access.pk}/archive/", follow=True)
    assert "no archive" in response.content.decode()


def test_command_line_access_request(ada, capsys):
    from django.core.management import call_command

    call_command("privacy_request", "access", "--regulation", "gdpr", f"email:{EMAIL}")
    out = capsys.readouterr().out
    request = PrivacyRequest.objects.get()
    assert request.status == "completed" and f"archive: {request.archive_path}" in out
