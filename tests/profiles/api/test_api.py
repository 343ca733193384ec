import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from cdp_site.models import ApiToken
from identity.models import Merge
from profiles.models import Event, Profile, RawEvent
from profiles.processing import raw_events_process
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(send):
    send(
        event(
            "payment.succeeded",
            ids=[("email", "Ada@Example.com"), ("phone", "+44 20 7946 0958"), ("user_id", "ada")],
            properties={"payment_id": "p1", "amount": 30.0, "currency": "GBP"},
            revenue="30.00",
            currency="GBP",
            traits={"first_name": "Ada"},
            consent=[("email_marketing", True)],
            at="2026-02-01T10:00:00+00:00",
        )
    )
    send(event("page.viewed", ids=[("user_id", "ada")], at="2026-02-02T10:00:00+00:00"))
    raw_events_process()
    return Profile.objects.get()


ENDPOINTS = {
    "/api/v1/profiles/": {"marketer", "guest_services", "privacy_officer", "integration_engineer"},
    "/api/v1/sources/": {"integration_engineer"},
    "/api/v1/raw-events/": {"privacy_officer", "integration_engineer"},
}


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
@pytest.mark.parametrize("role", ["marketer", "guest_services", "privacy_officer", "integration_engineer"])
def test_permission_matrix(api, path, role):
    assert api(role).get(path).status_code == (200 if role in ENDPOINTS[path] else 403)


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_no_or_bad_token_is_401(path):
    assert APIClient().get(path).status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token cdp_not-a-token")
    assert client.get(path).status_code == 401


def test_revoked_token_is_401(make_user):
    row, token = ApiToken.issue(user=make_user("marketer"))
    row.is_active = False
    row.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/profiles/").status_code == 401


@pytest.mark.parametrize(
    "identifier",
    [
        "email:ada@example.com",
        "email:  ADA@example.COM ",
        "phone:+442079460958",
        "phone:+44 (20) 7946-0958",
        "user_id:ada",
    ],
)
def test_lookup_by_identifier_normalised_as_at_ingest(api, ada, identifier):
    response = api("marketer").get("/api/v1/profiles/", {"identifier": identifier})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [ada.pk]


def test_lookup_without_match_is_empty(api, ada):
    assert api("marketer").get("/api/v1/profiles/", {"identifier": "email:nobody@example.com"}).json()["results"] == []


@pytest.mark.parametrize(
    "identifier, message",
    [("email:not-an-email", "not an email address"), ("shoe:42", "unknown identifier type"), ("ada", "Use type:value")],
)
def test_bad_identifier_is_400_saying_what_was_wrong(api, ada, identifier, message):
    response = api("marketer").get("/api/v1/profiles/", {"identifier": identifier})
    assert response.status_code == 400
    assert message in response.json()["identifier"][0]


def test_profile_detail(api, ada, canonical_source):
    body = api("marketer").get(f"/api/v1/profiles/{ada.pk}/").json()
    assert body["lifetime_revenue"] == "30.00" and body["lifecycle"] == "customer"
    # Personal data is masked (see tests/cdp_site/test_pii_masking.py for ?reveal=1).
    assert {(i["type"], i["value"]) for i in body["identifiers"]} == {
        ("email", "a***@e***.com"),
        ("phone", "+**********58"),
        ("user_id", "ada"),
    }
    assert body["display_name"] == "A."
    assert body["traits"]["first_name"] == {
        "value": "A.",
        "source": canonical_source.slug,
        "observed_at": "2026-02-01T10:00:00+00:00",
        "is_verified": False,
    }
    assert body["consent"]["email_marketing"]["is_granted"] is True
    assert body["merges"] == []


def test_merged_id_redirects_and_merge_history(api, send):
    send(event(ids=[("email", "m@example.com")]))
    send(event(ids=[("phone", "+14155550188")]))
    raw_events_process()
    send(event(ids=[("email", "m@example.com"), ("phone", "+14155550188")]))
    raw_events_process()
    merge = Merge.objects.get()
    client = api("guest_services")
    response = client.get(f"/api/v1/profiles/{merge.absorbed_id}/")
    assert response.status_code == 302 and response["Location"] == f"/api/v1/profiles/{merge.survivor_id}/"
    body = client.get(response["Location"]).json()
    assert [(m["survivor"], m["absorbed"], m["rule"]) for m in body["merges"]] == [
        (merge.survivor_id, merge.absorbed_id, "co_observed")
    ]
    assert client.get("/api/v1/profiles/987654/").status_code == 404
    listed = [row["id"] for row in client.get("/api/v1/profiles/").json()["results"]]
    assert merge.absorbed_id not in listed and merge.survivor_id in listed


def test_profile_events_newest_first_with_filters(api, ada):
    client = api("marketer")
    body = client.get(f"/api/v1/profiles/{ada.pk}/events/").json()
    assert [e["type"] for e in body["results"]] == ["page.viewed", "payment.succeeded"]
    assert body["results"][1]["revenue"] == "30.00"
    filtered = client.get(f"/api/v1/profiles/{ada.pk}/events/", {"type": "payment.succeeded"}).json()["results"]
    assert len(filtered) == 1
    assert client.get("/api/v1/profiles/424242/events/").status_code == 404


def test_profile_list_query_count_does_not_grow(api, send, django_assert_max_num_queries):
    for n in range(40):
        send(event(ids=[("user_id", f"u{n}")]))
    raw_events_process()
    client = api("marketer")
    with django_assert_max_num_queries(8):
        assert len(client.get("/api/v1/profiles/").json()["results"]) == 40


def test_sources_never_expose_secrets(api, canonical_source):
    body = api("integration_engineer").get("/api/v1/sources/").json()
    assert body[0]["slug"] == canonical_source.slug
    assert not {"write_key_hash", "signing_secrets", "write_key"} & set(body[0])
    detail = api("integration_engineer").get(f"/api/v1/sources/{canonical_source.slug}/").json()
    assert detail["kind"] == "csv"


def test_raw_events_filter_and_replay(api, send):
    from profiles.models import EventContract

    bad = send(
        event("payment.succeeded", ids=[("user_id", "q")], properties={"payment_id": "x"}), external_id="ext-bad"
    )
    send(event(ids=[("user_id", "ok")]), external_id="ext-ok")
    raw_events_process()
    client = api("integration_engineer")
    rows = client.get("/api/v1/raw-events/", {"external_id": "ext-bad"}).json()["results"]
    assert [(r["id"], r["status"]) for r in rows] == [(bad.pk, "quarantined")]
    assert client.get("/api/v1/raw-events/", {"status": "processed"}).json()["results"][0]["external_id"] == "ext-ok"
    assert "payload" in client.get(f"/api/v1/raw-events/{bad.pk}/").json()

    EventContract.objects.filter(event_type="payment.succeeded").update(required={"payment_id": "string"})
    response = client.post(f"/api/v1/raw-events/{bad.pk}/replay/")
    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert client.post(f"/api/v1/raw-events/{bad.pk}/replay/").status_code == 409
    assert api("privacy_officer").post(f"/api/v1/raw-events/{bad.pk}/replay/").status_code == 403


def test_openapi_schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    for path in [
        "/api/v1/profiles/",
        "/api/v1/profiles/{id}/",
        "/api/v1/profiles/{id}/events/",
        "/api/v1/sources/",
        "/api/v1/raw-events/",
        "/api/v1/raw-events/{id}/replay/",
    ]:
        assert path in text, path


def test_schema_generates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_created_token_authenticates(capsys, django_user_model, ada):
    import json

    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("ops")
    user.groups.add(Group.objects.get(name="marketer"))
    call_command("create_api_token", "ops")
    token = json.loads(capsys.readouterr().out)["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/profiles/").status_code == 200
    assert Event.objects.count() == 2 and RawEvent.objects.count() == 2
