"""Personal data is masked on staff pages and in the API; roles that may see it reveal it per
profile, and every reveal is in the audit log (fields, never values)."""

import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from cdp_site import pii
from cdp_site.models import AuditEntry
from identity.models import IdentityLink
from identity.services import profiles_link
from profiles.models import Profile, RawEvent
from profiles.processing import raw_events_process
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
MAY_SEE = {"guest_services", "privacy_officer", "integration_engineer"}
CLEARTEXT = ["ada@example.com", "+442079460958", "Ada", "Lovelace", "1815-12-10"]


@pytest.fixture(autouse=True)
def _roles(roles):
    """Every test here reads the current role permissions (tests/conftest.py `roles`)."""


@pytest.fixture
def ada(send):
    send(
        event(
            "page.viewed",
            ids=[("email", "Ada@Example.com"), ("phone", "+44 20 7946 0958"), ("user_id", "ada")],
            traits={"first_name": "Ada", "last_name": "Lovelace", "birthday": "1815-12-10", "plan": "gold"},
            properties={"order_id": "o-1", "email": "ada@example.com", "total": 12.5},
        )
    )
    raw_events_process()
    return profile_of("email", "ada@example.com")


def assert_masked(html: str) -> None:
    # Whole words: a random CSRF token or asset hash may contain "Ada" by chance.
    for text in CLEARTEXT:
        found = re.search(rf"(?<![A-Za-z0-9]){re.escape(text)}(?![A-Za-z0-9])", html)
        assert found is None, html[max(found.start() - 200, 0) : found.end() + 200]


def reveals() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="pii.reveal").order_by("id"))


# -- masking, pure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, masked",
    [
        ("ada@example.com", "a***@e***.com"),
        ("ada.lovelace@mail.example.co.uk", "a***@m***.uk"),
        ("x@localhost", "x***@l***"),
        ("not-an-email", "***"),
    ],
)
def test_mask_email_keeps_enough_to_recognise(value, masked):
    assert pii.mask_email(value) == masked


@pytest.mark.parametrize(
    "value, masked",
    [("+442079460958", "+**********58"), ("+44 20 7946 0958", "+** ** **** **58"), ("12345", "*****")],
)
def test_mask_phone_keeps_the_last_two_digits(value, masked):
    assert pii.mask_phone(value) == masked


@pytest.mark.parametrize(
    "value, masked", [("Ada Lovelace", "A. L."), ("jean-luc picard", "J. L. P."), ("Ada", "A."), ("", "")]
)
def test_mask_name_gives_initials(value, masked):
    assert pii.mask_name(value) == masked


def test_mask_json_masks_personal_keys_and_emails_in_text_but_keeps_hashes():
    digest = "a" * 64
    value = {
        "email": "ana@example.com",
        "first_name": "Ana",
        "plan": "gold",
        "note": "write to ana@example.com or call +14155550100",
        "hashed": {"email": digest},
        "people": [{"phone": "+14155550100", "is_member": True}],
        "total": 3,
    }
    assert pii.mask_json(value) == {
        "email": "a***@e***.com",
        "first_name": "A.",
        "plan": "gold",
        "note": "write to a***@e***.com or call +*********00",
        "hashed": {"email": digest},
        "people": [{"phone": "+*********00", "is_member": True}],
        "total": 3,
    }


def test_the_parts_of_a_personal_field_are_masked_and_other_names_are_not():
    value = {
        "shipping_address": {"line1": "12 Acacia Avenue", "city": "London", "zip": "N1 9GU"},
        "product_name": "Yoga mat",
        "customer_name": "Ada Lovelace",
        "tags": ["vip"],
    }
    assert pii.mask_json(value) == {
        "shipping_address": {"line1": "***", "city": "***", "zip": "***"},
        "product_name": "Yoga mat",
        "customer_name": "A. L.",
        "tags": ["vip"],
    }
    assert pii.mask_value("address", {"city": "London"}) == {"city": "***"}


def test_mask_body_masks_in_place_so_the_body_reads_as_sent():
    compact = json.dumps(
        {"type": "profile.upserted", "email": "ana@example.com", "first_name": "Ana"}, separators=(",", ":")
    )
    assert pii.mask_body(compact) == '{"type":"profile.upserted","email":"a***@e***.com","first_name":"A."}'
    indented = json.dumps({"email": "ana@example.com"}, indent=2)
    assert pii.mask_body(indented) == '{\n  "email": "a***@e***.com"\n}'
    assert pii.mask_body("To=%2B14155550100&Body=Hello&first_name=Ana") == "To=+*********00&Body=Hello&first_name=A."
    assert pii.mask_body("contact ana@example.com") == "contact a***@e***.com"
    assert pii.mask_body("") == ""


@pytest.mark.parametrize("role", ROLES)
def test_who_may_see_personal_data(make_user, role):
    assert pii.can_see_pii(make_user(role)) is (role in MAY_SEE)


# -- pages ----------------------------------------------------------------------------------------


def test_a_marketer_sees_masked_values_and_no_reveal_button(client, make_user, ada):
    client.force_login(make_user("marketer"))
    html = client.get(reverse("profiles:profile_detail", args=[ada.pk])).content.decode()
    assert_masked(html)
    assert "A. L." in html and "a***@e***.com" in html and "+**********58" in html
    assert "<td>gold</td>" in html  # not personal: shown as it is
    assert "&#x27;email&#x27;: &#x27;a***@e***.com&#x27;" in html  # the timeline's properties
    assert "Reveal</button>" not in html
    listing = client.get(reverse("profiles:profile_list")).content.decode()
    assert_masked(listing)
    assert "A. L.</a>" in listing and "Reveal</button>" not in listing


def test_search_by_email_still_works_and_the_results_are_masked(client, make_user, ada):
    client.force_login(make_user("marketer"))
    response = client.get(reverse("profiles:profile_list"), {"q": "  ADA@example.com"})
    assert [profile.pk for profile in response.context["page"]] == [ada.pk]
    body = response.content.decode()
    assert "A. L.</a>" in body and "Lovelace" not in body


def test_a_marketer_cannot_reveal(client, make_user, ada):
    client.force_login(make_user("marketer"))
    response = client.post(reverse("profile_reveal", args=[ada.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert reveals() == []


@pytest.mark.parametrize("role", sorted(MAY_SEE))
def test_roles_that_may_see_personal_data_reveal_it_per_profile_and_it_is_logged(client, make_user, ada, role):
    user = make_user(role)
    client.force_login(user)
    page = client.get(reverse("profiles:profile_detail", args=[ada.pk])).content.decode()
    assert_masked(page)  # masked until they ask
    assert page.count("Reveal</button>") == 1
    assert f'hx-post="{reverse("profile_reveal", args=[ada.pk])}"' in page

    response = client.post(
        reverse("profile_reveal", args=[ada.pk]), {"where": "profiles:profile_detail"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "<html" not in fragment
    for text in CLEARTEXT:
        assert text in fragment, text
    [entry] = reveals()
    assert (entry.actor, entry.target_type, entry.target_id) == (
        f"user:{user.username}",
        "profiles.profile",
        str(ada.pk),
    )
    assert entry.detail == {
        "fields": [
            "identifier:email",
            "identifier:phone",
            "trait:birth_month",  # derived from the birthday, sealed like it
            "trait:birthday",
            "trait:first_name",
            "trait:last_name",
        ],
        "where": "profiles:profile_detail",
    }
    logged = entry.summary + json.dumps(entry.detail)
    assert not any(text in logged for text in CLEARTEXT)  # names the fields, never the values


def test_reveal_without_javascript_is_a_page_and_needs_post(client, make_user, ada):
    client.force_login(make_user("guest_services"))
    url = reverse("profile_reveal", args=[ada.pk])
    assert client.get(url).status_code == 405
    response = client.post(url, {"next": reverse("profiles:profile_list")})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and "ada@example.com" in html
    assert f'href="{reverse("profiles:profile_list")}"' in html
    response = client.post(url, {"next": "https://evil.example/"})
    assert "evil.example" not in response.content.decode()
    assert client.post(reverse("profile_reveal", args=[987654])).status_code == 404
    assert len(reveals()) == 2


def test_review_pages_are_masked_with_a_reveal_per_side(client, make_user, send):
    send(event(ids=[("email", "ada@example.com")], traits={"first_name": "Ada", "last_name": "Lovelace"}))
    send(event(ids=[("phone", "+442079460958")], traits={"first_name": "Ada"}))
    raw_events_process()
    outcome = profiles_link(
        profile_a_id=profile_of("email", "ada@example.com").pk,
        profile_b_id=profile_of("phone", "+442079460958").pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.7,
        evidence={"match_run_id": 1},
        activate=False,
        actor="rule:probabilistic",
    )
    client.force_login(make_user("guest_services"))
    queue = client.get(reverse("identity:review_queue")).content.decode()
    pair = client.get(reverse("identity:review_link", args=[outcome.link_id])).content.decode()
    for html in (queue, pair):
        assert_masked(html)
        assert "a***@e***.com" in html and "+**********58" in html
        assert html.count("Reveal</button>") == 2
    assert "A. L." in pair


def test_dry_run_payloads_are_masked_with_a_reveal_per_record(client, make_user, api, ada):
    from activations.destinations import destination_save
    from activations.models import Sync, SyncRecord, SyncRun
    from segments.services import segment_create

    segment = segment_create(
        slug="gold",
        name="Gold",
        definition={"all": [{"trait": "plan", "op": "eq", "value": "gold"}]},
        note="",
        author="t",
    )
    destination = destination_save(
        name="Hook",
        slug="hook",
        kind="webhook",
        base_url="http://127.0.0.1:9/hook",
        fields=[{"name": "email", "source": "identifier:email"}, {"name": "first_name", "source": "trait:first_name"}],
        idempotency_key="email",
        operations=["upsert"],
        consent_purpose="",
        pii_mode="cleartext",
        secrets={"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    )
    sync = Sync.objects.create(name="Gold", slug="gold-hook", segment=segment, destination=destination, mode="upsert")
    run = SyncRun.objects.create(sync=sync, triggered_by="test", created_at=timezone.now(), is_dry_run=True)
    SyncRecord.objects.create(
        run=run,
        profile_id=ada.pk,
        operation="upsert",
        status=SyncRecord.DRY_RUN,
        key="ada@example.com",
        payload=json.dumps({"email": "ada@example.com", "first_name": "Ada"}),
        created_at=timezone.now(),
    )
    url = reverse("activations:run_detail", args=[run.pk])
    for role, reveal_buttons in (("marketer", 0), ("integration_engineer", 1)):
        client.force_login(make_user(role))
        html = client.get(url).content.decode()
        assert_masked(html)
        assert "a***@e***.com" in html and "&quot;first_name&quot;: &quot;A.&quot;" in html
        assert html.count("Reveal</button>") == reveal_buttons
    records = api("marketer").get(f"/api/v1/sync-runs/{run.pk}/records/").json()["results"]
    assert [record["payload"] for record in records] == [{"email": "a***@e***.com", "first_name": "A."}]


def test_raw_event_payloads_are_cleartext_for_privacy_officers_and_the_read_is_logged(client, make_user, api, ada):
    raw = RawEvent.objects.get()
    user = make_user("privacy_officer")
    client.force_login(user)
    html = client.get(reverse("profiles:raw_event_detail", args=[raw.pk])).content.decode()
    assert "ada@example.com" in html
    client_api = api("privacy_officer")
    body = client_api.get(f"/api/v1/raw-events/{raw.pk}/").json()
    assert body["payload"]["events"][0]["properties"]["email"] == "ada@example.com"
    assert list(
        AuditEntry.objects.filter(action="raw_event.view").order_by("id").values_list("actor", "target_id")
    ) == [
        (f"user:{user.username}", str(raw.pk)),
        (f"api:{client_api.username}", str(raw.pk)),
    ]


# -- API ------------------------------------------------------------------------------------------


def test_api_masks_for_everyone_by_default(api, ada):
    for role in ROLES:
        client = api(role)
        body = client.get(f"/api/v1/profiles/{ada.pk}/").json()
        assert_masked(json.dumps(body))
        assert {(i["type"], i["value"]) for i in body["identifiers"]} == {
            ("email", "a***@e***.com"),
            ("phone", "+**********58"),
            ("user_id", "ada"),
        }
        assert body["display_name"] == "A. L."
        assert body["traits"]["plan"]["value"] == "gold" and body["traits"]["birthday"]["value"] == "***"
        listed = client.get("/api/v1/profiles/", {"identifier": "email:ada@example.com"}).json()["results"]
        assert [(row["id"], row["display_name"]) for row in listed] == [(ada.pk, "A. L.")]
        events = client.get(f"/api/v1/profiles/{ada.pk}/events/").json()["results"]
        assert events[0]["properties"] == {"order_id": "o-1", "email": "a***@e***.com", "total": 12.5}
    assert reveals() == []


def test_api_reveal_is_refused_to_marketers(api, ada):
    response = api("marketer").get(f"/api/v1/profiles/{ada.pk}/", {"reveal": "1"})
    assert response.status_code == 403
    assert reveals() == []


def test_api_reveal_gives_cleartext_and_is_logged(api, ada):
    client = api("guest_services")
    body = client.get(f"/api/v1/profiles/{ada.pk}/", {"reveal": "1"}).json()
    assert {(i["type"], i["value"]) for i in body["identifiers"]} == {
        ("email", "ada@example.com"),
        ("phone", "+442079460958"),
        ("user_id", "ada"),
    }
    assert body["display_name"] == "Ada Lovelace" and body["traits"]["birthday"]["value"] == "1815-12-10"
    [entry] = reveals()
    assert entry.actor == f"api:{client.username}" and entry.target_id == str(ada.pk)
    assert entry.detail["where"] == "api:profile-detail"
    assert "identifier:email" in entry.detail["fields"]


def test_api_reveal_follows_a_merged_id_to_the_survivor(api, send):
    send(event(ids=[("email", "m@example.com")], traits={"first_name": "Mo"}))
    send(event(ids=[("phone", "+14155550188")]))
    raw_events_process()
    send(event(ids=[("email", "m@example.com"), ("phone", "+14155550188")]))
    raw_events_process()
    absorbed = Profile.objects.get(status=Profile.MERGED)
    response = api("guest_services").get(f"/api/v1/profiles/{absorbed.pk}/", {"reveal": "1"})
    assert response.status_code == 302 and response["Location"].endswith("/?reveal=1")
    assert reveals() == []  # only the profile actually shown is revealed


def test_identity_api_masks_identifiers(api, send):
    send(event(ids=[("email", "ada@example.com")]))
    send(event(ids=[("phone", "+442079460958")]))
    raw_events_process()
    profiles_link(
        profile_a_id=profile_of("email", "ada@example.com").pk,
        profile_b_id=profile_of("phone", "+442079460958").pk,
        kind=IdentityLink.PROBABILISTIC,
        rule="probabilistic",
        confidence=0.7,
        evidence={},
        activate=False,
        actor="rule:probabilistic",
    )
    client = api("guest_services")
    for path in ("/api/v1/review-queue/", "/api/v1/identity-links/"):
        body = json.dumps(client.get(path).json())
        assert_masked(body)
        assert "a***@e***.com" in body and "+**********58" in body
