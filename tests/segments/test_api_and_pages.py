"""Segments over the REST API and the pages, with the role permissions."""

import json

import pytest
from django.urls import reverse

from profiles.processing import raw_events_process
from segments.models import Segment, SegmentVersion
from segments.services import segment_create
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db
ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
PARIS = {"trait": "city", "op": "eq", "value": "Paris"}


@pytest.fixture
def people(send):
    for n, city in enumerate(["Paris", "Paris", "London"]):
        send(event("page.viewed", ids=[("email", f"p{n}@example.com")], traits={"city": city}))
    raw_events_process()


@pytest.mark.parametrize("role", ROLES)
def test_api_permissions_and_no_write_when_denied(api, role):
    client = api(role)
    listed = client.get("/api/v1/segments/")
    created = client.post(
        "/api/v1/segments/", {"slug": "paris", "name": "Paris", "definition": PARIS, "note": "n"}, format="json"
    )
    if role == "marketer":
        assert (listed.status_code, created.status_code) == (200, 201)
    else:
        assert (listed.status_code, created.status_code) == (403, 403)
        assert Segment.objects.count() == 0


def test_api_create_version_publish_rollback_diff_preview(api, people):
    client = api("marketer")
    body = {"slug": "paris", "name": "Paris", "definition": PARIS, "note": "first"}
    created = client.post("/api/v1/segments/", body, format="json").json()
    assert created["published_version"]["number"] == 1 and created["owner"] == client.username

    bad = client.post(
        "/api/v1/segments/paris/versions/",
        {"definition": {"all": [PARIS, {"event": "order.complete"}]}, "note": "typo"},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["definition"][0]["path"] == "all[1].event"
    assert "order.completed" in bad.json()["definition"][0]["message"]  # the suggestion

    london = {"trait": "city", "op": "eq", "value": "London"}
    version = client.post("/api/v1/segments/paris/versions/", {"definition": london, "note": "v2"}, format="json")
    assert version.status_code == 201 and version.json()["number"] == 2
    same = client.post("/api/v1/segments/paris/versions/", {"definition": london, "note": "again"}, format="json")
    assert same.status_code == 200 and same.json()["number"] == 2

    diff = client.get("/api/v1/segments/paris/diff/?from=1&to=2").json()["diff"]
    assert '-  "value": "Paris"' in diff and '+  "value": "London"' in diff
    published = client.post("/api/v1/segments/paris/publish/", {"number": 1}, format="json")
    assert published.json()["published_version"]["number"] == 1
    rolled = client.post("/api/v1/segments/paris/rollback/", {"number": 2}, format="json")
    assert rolled.status_code == 201 and rolled.json()["number"] == 3
    assert [v["number"] for v in client.get("/api/v1/segments/paris/versions/").json()] == [3, 2, 1]

    preview = client.post("/api/v1/segments/preview/", {"definition": PARIS}, format="json").json()
    assert (preview["count"], preview["profiles"], len(preview["sample"])) == (2, 3, 2)
    invalid = client.post("/api/v1/segments/preview/", {"definition": {"trait": 3}}, format="json")
    assert invalid.status_code == 400 and invalid.json()["definition"]


@pytest.mark.parametrize("role", ROLES)
def test_pages_permission_matrix(client, make_user, role, people):
    segment_create(slug="paris", name="Paris", definition=PARIS, note="first", author="u")
    client.force_login(make_user(role))
    allowed = role == "marketer"
    for url in (reverse("segments:segment_list"), reverse("segments:segment_detail", args=["paris"])):
        assert client.get(url).status_code == (200 if allowed else 403)
    response = client.post(
        reverse("segments:segment_version_new", args=["paris"]),
        {"definition": json.dumps({"trait": "city", "op": "eq", "value": "Rome"}), "note": "n"},
    )
    assert response.status_code == (302 if allowed else 403)
    assert SegmentVersion.objects.count() == (2 if allowed else 1)


def test_pages_create_show_diff_and_roll_back(client, make_user, people):
    client.force_login(make_user("marketer"))
    response = client.post(
        reverse("segments:segment_new"),
        {"slug": "paris", "name": "Paris", "holdout_percent": 0, "definition": json.dumps(PARIS), "note": "first"},
    )
    assert response.status_code == 302
    detail = reverse("segments:segment_detail", args=["paris"])
    assert "<strong>2</strong> of 3 active profiles" in client.get(detail).content.decode()

    # A typo is shown next to the condition it is in; nothing is written.
    bad = client.post(
        reverse("segments:segment_version_new", args=["paris"]),
        {"definition": json.dumps({"trait": "city", "op": "greater", "value": 1}), "note": "x"},
    )
    assert bad.status_code == 400 and "op: Unknown operator" in bad.content.decode()
    not_json = client.post(reverse("segments:segment_version_new", args=["paris"]), {"definition": "{", "note": "x"})
    assert not_json.status_code == 400 and "Not valid JSON" in not_json.content.decode()
    assert SegmentVersion.objects.count() == 1

    london = {"trait": "city", "op": "eq", "value": "London"}
    client.post(
        reverse("segments:segment_version_new", args=["paris"]), {"definition": json.dumps(london), "note": "v2"}
    )
    html = client.get(detail, {"from": 1, "to": 2}).content.decode()
    assert "-  &quot;value&quot;: &quot;Paris&quot;" in html
    client.post(reverse("segments:segment_rollback", args=["paris", 1]))
    segment = Segment.objects.get(slug="paris")
    assert (segment.published_version.number, segment.published_version.definition) == (3, PARIS)


def test_previews_mask_personal_data(api, client, make_user, send):
    send(
        event(
            "page.viewed",
            ids=[("email", "ada@example.com")],
            traits={"city": "Paris", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        )
    )
    raw_events_process()
    preview = api("marketer").post("/api/v1/segments/preview/", {"definition": PARIS}, format="json")
    [row] = preview.json()["sample"]
    assert row["traits"]["city"] == "Paris"
    assert "Ada" not in json.dumps(row) and "ada@example.com" not in json.dumps(row)
    client.force_login(make_user("marketer"))
    page = client.post(reverse("segments:builder_update"), {"definition": json.dumps(PARIS)}, HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert page.status_code == 200 and 'class="builder-sample"' in html
    assert "Lovelace" not in html and "A. L." in html
