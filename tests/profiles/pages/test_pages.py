import re

import pytest
from django.urls import reverse

from identity.models import Merge
from profiles.models import Profile, RawEvent, Source
from profiles.processing import raw_events_process
from profiles.sources import signing_secrets, source_create, source_for_write_key
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
PAGES = {
    "profiles:profile_list": {"marketer", "guest_services", "privacy_officer", "integration_engineer"},
    "profiles:source_list": {"integration_engineer"},
    "profiles:source_new": {"integration_engineer"},
    "profiles:raw_event_list": {"privacy_officer", "integration_engineer"},
    "profiles:schema_drift": {"integration_engineer"},
}


@pytest.mark.parametrize("url_name", sorted(PAGES))
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(client, make_user, url_name, role):
    client.force_login(make_user(role))
    response = client.get(reverse(url_name))
    assert response.status_code == (200 if role in PAGES[url_name] else 403)


@pytest.mark.parametrize("url_name", sorted(PAGES))
def test_anonymous_users_go_to_login(client, url_name):
    response = client.get(reverse(url_name))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ROLES)
def test_menu_shows_only_what_the_role_may_open(client, make_user, role):
    client.force_login(make_user(role))
    html = client.get(reverse("home")).content.decode()
    for url_name, allowed in PAGES.items():
        if url_name == "profiles:source_new":
            continue
        assert (f'href="{reverse(url_name)}"' in html) == (role in allowed), url_name


def test_login_page_and_login(client, make_user):
    make_user("marketer", username="mia")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "mia", "password": "pw-123-secret"})
    assert response.status_code == 302
    assert client.get(reverse("profiles:profile_list")).status_code == 200


def test_create_source_shows_write_key_once(client, make_user):
    client.force_login(make_user("integration_engineer"))
    response = client.post(
        reverse("profiles:source_new"),
        {
            "name": "Web SDK",
            "kind": "tracking",
            "priority": 50,
            "freshness_sla_minutes": 60,
            "rate_limit_per_second": 1000,
        },
    )
    assert response.status_code == 200
    key = re.search(r'data-testid="write-key">([^<]+)<', response.content.decode()).group(1)
    source = Source.objects.get(name="Web SDK")
    assert source_for_write_key(key) == source
    again = client.get(reverse("profiles:source_detail", args=[source.slug])).content.decode()
    assert key not in again and source.write_key_prefix in again


def test_rotating_a_write_key_stops_the_old_one(client, make_user):
    source, credentials = source_create(name="App", kind="tracking")
    client.force_login(make_user("integration_engineer"))
    response = client.post(reverse("profiles:source_rotate", args=[source.slug]))
    new_key = re.search(r'data-testid="write-key">([^<]+)<', response.content.decode()).group(1)
    assert source_for_write_key(credentials.write_key) is None
    assert source_for_write_key(new_key) == source


def test_rotating_a_signing_secret_keeps_the_old_one_until_retired(client, make_user):
    source, credentials = source_create(name="Stripe", kind="stripe")
    client.force_login(make_user("integration_engineer"))
    response = client.post(reverse("profiles:source_rotate", args=[source.slug]))
    new_secret = re.search(r'data-testid="signing-secret">([^<]+)<', response.content.decode()).group(1)
    source.refresh_from_db()
    assert signing_secrets(source) == [new_secret, credentials.signing_secret]
    client.post(reverse("profiles:source_retire_secrets", args=[source.slug]))
    source.refresh_from_db()
    assert signing_secrets(source) == [new_secret]


def test_a_marketer_cannot_rotate(client, make_user):
    source, credentials = source_create(name="App", kind="tracking")
    client.force_login(make_user("marketer"))
    assert client.post(reverse("profiles:source_rotate", args=[source.slug])).status_code == 403
    assert source_for_write_key(credentials.write_key) == source


def test_create_source_form_errors(client, make_user):
    client.force_login(make_user("integration_engineer"))
    response = client.post(reverse("profiles:source_new"), {"name": "", "kind": "ftp"})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode() and not Source.objects.exists()


@pytest.fixture
def people(send):
    send(
        event(
            ids=[("email", "Ada@Example.com"), ("phone", "+44 20 7946 0958"), ("user_id", "ada")],
            traits={"first_name": "Ada", "last_name": "Lovelace"},
        )
    )
    send(event(ids=[("email", "grace@example.com"), ("user_id", "grace")], traits={"first_name": "Grace"}))
    raw_events_process()


@pytest.mark.parametrize(
    "query, names",
    [
        ("ada@example.com", ["Ada Lovelace"]),
        ("  ADA@example.com ", ["Ada Lovelace"]),
        ("020 7946 0958", []),  # national format needs the default region (US here): no match
        ("+442079460958", ["Ada Lovelace"]),
        ("phone:+44 20 7946 0958", ["Ada Lovelace"]),
        ("user_id:grace", ["Grace"]),
        ("lovelace", ["Ada Lovelace"]),
        ("nobody", []),
    ],
)
def test_profile_search(client, make_user, people, query, names):
    client.force_login(make_user("marketer"))
    response = client.get(reverse("profiles:profile_list"), {"q": query})
    assert [p.display_name for p in response.context["page"]] == names


def test_profile_search_explains_bad_identifier_queries(client, make_user, people):
    client.force_login(make_user("marketer"))
    response = client.get(reverse("profiles:profile_list"), {"q": "email:not-an-email"})
    assert "not an email address" in response.content.decode()
    response = client.get(reverse("profiles:profile_list"), {"q": "shoe_size:42"})
    assert "unknown identifier type" in response.content.decode()


def test_profile_search_htmx_returns_the_fragment(client, make_user, people):
    client.force_login(make_user("marketer"))
    response = client.get(reverse("profiles:profile_list"), {"q": "grace"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and "G.</a>" in html and "Grace" not in html  # names masked for marketers


def test_profile_page_shows_identity_traits_timeline_and_consent(client, make_user, send):
    send(
        event(
            "payment.succeeded",
            ids=[("email", "z@example.com"), ("user_id", "z")],
            properties={"payment_id": "pi_1", "amount": 12.0, "currency": "EUR"},
            revenue="12.00",
            currency="EUR",
            traits={"first_name": "Zoe"},
            consent=[("email_marketing", True)],
        )
    )
    raw_events_process()
    profile = Profile.objects.get()
    client.force_login(make_user("marketer"))
    html = client.get(reverse("profiles:profile_detail", args=[profile.pk])).content.decode()
    assert "Zoe" not in html and "z@example.com" not in html  # masked for marketers
    for text in [
        "Z.",
        "z***@e***.com",
        "payment.succeeded",
        "12.00",
        "email_marketing",
        "granted",
        "Canonical test source",
    ]:
        assert text in html, text


def test_merged_profile_id_redirects_to_the_survivor(client, make_user, send):
    send(event(ids=[("email", "m@example.com")]))
    send(event(ids=[("phone", "+14155550177")]))
    raw_events_process()
    send(event(ids=[("email", "m@example.com"), ("phone", "+14155550177")]))
    raw_events_process()
    merge = Merge.objects.get()
    client.force_login(make_user("guest_services"))
    response = client.get(reverse("profiles:profile_detail", args=[merge.absorbed_id]))
    assert response.status_code == 302
    assert response["Location"] == reverse("profiles:profile_detail", args=[merge.survivor_id])
    html = client.get(response["Location"]).content.decode()
    assert f"#{merge.absorbed_id} merged into" in html
    assert client.get(reverse("profiles:profile_detail", args=[999999])).status_code == 404


def test_profile_page_query_count_does_not_grow_with_data(client, make_user, send, django_assert_max_num_queries):
    for n in range(30):
        send(event("page.viewed", ids=[("user_id", "busy"), ("anonymous_id", f"dev-{n}")], traits={f"t{n}": n}))
    raw_events_process()
    profile = Profile.objects.get()
    client.force_login(make_user("marketer"))
    with django_assert_max_num_queries(14):
        assert client.get(reverse("profiles:profile_detail", args=[profile.pk])).status_code == 200


def test_source_list_counts_by_status(client, make_user, send, canonical_source):
    send(event(ids=[("user_id", "ok")]))
    send(event("payment.succeeded", ids=[("user_id", "bad")], properties={}))
    raw_events_process()
    client.force_login(make_user("integration_engineer"))
    with_counts = client.get(reverse("profiles:source_list")).context["rows"][0]["source"]
    assert (with_counts.events_24h, with_counts.quarantined, with_counts.failed) == (2, 1, 0)


def test_raw_event_list_filters_and_replay(client, make_user, send, canonical_source):
    from profiles.models import EventContract

    bad = send(event("payment.succeeded", ids=[("user_id", "r")], properties={"payment_id": "p"}))
    send(event(ids=[("user_id", "fine")]))
    raw_events_process()
    client.force_login(make_user("integration_engineer"))
    page = client.get(reverse("profiles:raw_event_list"), {"status": "quarantined"}).context["page"]
    assert [r.pk for r in page] == [bad.pk]

    EventContract.objects.filter(event_type="payment.succeeded").update(required={"payment_id": "string"})
    client.post(reverse("profiles:raw_event_replay"), {"ids": [bad.pk]})
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.PROCESSED


def test_privacy_officer_cannot_replay(client, make_user, send):
    bad = send(event("payment.succeeded", ids=[("user_id", "r")], properties={"payment_id": "p"}))
    raw_events_process()
    client.force_login(make_user("privacy_officer"))
    assert client.post(reverse("profiles:raw_event_replay"), {"ids": [bad.pk]}).status_code == 403
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.QUARANTINED


def test_consent_records_are_read_only_in_the_admin(admin_client, send):
    from consent.models import ConsentRecord

    send(event(ids=[("user_id", "c")], consent=[("sms_marketing", False)]))
    raw_events_process()
    record = ConsentRecord.objects.get()
    assert admin_client.get(f"/admin/consent/consentrecord/{record.pk}/delete/").status_code == 403
    admin_client.post(f"/admin/consent/consentrecord/{record.pk}/change/", {"purpose": "analytics"})
    assert ConsentRecord.objects.get().purpose == "sms_marketing"


def test_admin_replay_action(admin_client, send):
    from profiles.models import EventContract

    bad = send(event("payment.succeeded", ids=[("user_id", "r")], properties={"payment_id": "p"}))
    raw_events_process()
    EventContract.objects.filter(event_type="payment.succeeded").update(required={})
    admin_client.post("/admin/profiles/rawevent/", {"action": "replay", "_selected_action": [bad.pk]})
    assert RawEvent.objects.get(pk=bad.pk).status == RawEvent.PROCESSED


def test_admin_pages_render(admin_client, people):
    for path in [
        "/admin/",
        "/admin/profiles/source/",
        "/admin/identity/identifier/",
        "/admin/identity/merge/",
        "/admin/profiles/profile/",
        "/admin/cdp_site/apitoken/",
        "/admin/consent/consentrecord/",
    ]:
        assert admin_client.get(path).status_code == 200, path
