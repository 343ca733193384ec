"""The metrics and simulation pages: permission matrix, figures shown, htmx partials, nothing written."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from identity.metrics import identity_metrics_snapshot
from identity.models import Identifier, IdentifierType, IdentityLink, IdentityMetricSnapshot, Merge
from profiles.models import Profile
from tests.identity.metrics.samples import BOOKINGS, SHOP

pytestmark = pytest.mark.django_db

ROLES = ["marketer", "guest_services", "privacy_officer", "integration_engineer"]
ALLOWED = {"marketer", "guest_services", "integration_engineer"}
PAGES = ["identity:metrics", "identity:simulation"]


def live_counts():
    return [model.objects.count() for model in (Profile, Identifier, IdentityLink, Merge, IdentityMetricSnapshot)]


def simulation_post(**overrides):
    data = {
        "files-TOTAL_FORMS": "4",
        "files-INITIAL_FORMS": "0",
        "files-MIN_NUM_FORMS": "0",
        "files-MAX_NUM_FORMS": "4",
        "files-0-file": SimpleUploadedFile("shop-export.csv", SHOP.encode(), content_type="text/csv"),
        "files-0-source": "shop",
        "files-0-mapping": "Customer Email = email\ncustomer_ref = ignore",
        "files-1-file": SimpleUploadedFile("bookings.csv", BOOKINGS.encode(), content_type="text/csv"),
        "files-1-source": "",
        "files-1-mapping": "",
    }
    types = list(IdentifierType.objects.order_by("-priority", "slug"))
    data.update({"rules-TOTAL_FORMS": str(len(types)), "rules-INITIAL_FORMS": str(len(types))})
    for index, identifier_type in enumerate(types):
        data.update(
            {
                f"rules-{index}-slug": identifier_type.slug,
                f"rules-{index}-priority": identifier_type.priority,
                f"rules-{index}-role": identifier_type.role,
                f"rules-{index}-normaliser": identifier_type.normaliser,
                f"rules-{index}-limit_per_profile": identifier_type.limit_per_profile or "",
            }
        )
    data.update(overrides)
    return data


@pytest.mark.parametrize("url_name", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(client, make_user, url_name, role):
    client.force_login(make_user(role))
    assert client.get(reverse(url_name)).status_code == (200 if role in ALLOWED else 403)


@pytest.mark.parametrize("url_name", PAGES)
def test_anonymous_users_go_to_login(client, url_name):
    response = client.get(reverse(url_name))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ["privacy_officer", None])
def test_denied_simulation_runs_nothing(client, make_user, role):
    if role:
        client.force_login(make_user(role))
    before = live_counts()
    response = client.post(reverse("identity:simulation"), simulation_post())
    assert response.status_code == (403 if role else 302)
    assert b"simulation-report" not in response.content
    assert live_counts() == before


def test_metrics_page_shows_the_figures_and_trends(client, make_user, graph):
    identity_metrics_snapshot()
    identity_metrics_snapshot()
    client.force_login(make_user("marketer"))
    html = client.get(reverse("identity:metrics")).content.decode()

    assert "<strong>5</strong>" in html and "<strong>40%</strong>" in html
    assert "2 with a verified canonical identifier" in html
    assert '66.7% <span class="muted">2/3</span>' in html  # shop -> booking
    assert "<code>co_observed</code></td><td>2</td><td>1</td>" in html
    assert f"<td>{'merge would give the profile 2 user_id identifiers (limit 1)'}</td><td>2</td>" in html
    assert "waiting for review (1 pending, 2 blocked)" in html
    assert "2 snapshots" in html and html.count("<polyline") == 9  # 6 figures + 3 sources


def test_metrics_partial_for_htmx(client, make_user, graph):
    client.force_login(make_user("integration_engineer"))
    response = client.get(reverse("identity:metrics"), {"history": "24"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'data-testid="headline"' in html
    assert "0 snapshots so far" in html


def test_simulation_form_starts_from_the_live_rules(client, make_user):
    client.force_login(make_user("guest_services"))
    html = client.get(reverse("identity:simulation")).content.decode()
    assert 'name="rules-0-slug" value="user_id"' in html
    assert 'name="rules-0-limit_per_profile" value="1"' in html
    assert 'name="files-TOTAL_FORMS" value="4"' in html


def test_simulation_reports_and_writes_nothing(client, make_user, graph):
    client.force_login(make_user("marketer"))
    before = live_counts()
    response = client.post(reverse("identity:simulation"), simulation_post())
    html = response.content.decode()

    assert response.status_code == 200
    assert live_counts() == before
    assert 'data-testid="simulation-report"' in html
    assert "<strong>5</strong> profiles, <strong>2</strong> merges,\n    <strong>2</strong> conflicts" in html
    assert "<td>bookings</td><td>shop</td>" in html  # the file name names an unnamed source
    assert '66.7% <span class="muted">2/3</span>' in html
    assert "merge would give the profile 2 user_id identifiers (limit 1)" in html
    assert "bookings, line 8" in html  # a sample merge shows the row that joined


def test_simulation_with_a_draft_rule(client, make_user):
    client.force_login(make_user("marketer"))
    data = simulation_post()
    slug_keys = [key for key, value in data.items() if key.endswith("-slug") and value == "stripe_customer_id"]
    data[slug_keys[0].replace("-slug", "-role")] = "canonical"
    html = client.post(reverse("identity:simulation"), data, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html
    assert "<code>merge_limit:stripe_customer_id</code></td><td>1</td>" in html


def test_simulation_needs_two_files(client, make_user):
    client.force_login(make_user("marketer"))
    data = simulation_post()
    del data["files-1-file"]
    html = client.post(reverse("identity:simulation"), data, HTTP_HX_REQUEST="true").content.decode()
    assert "Upload exports from two or more sources." in html
    assert "simulation-report" not in html


def test_simulation_reports_unusable_input(client, make_user):
    client.force_login(make_user("marketer"))
    data = simulation_post(**{"files-0-mapping": "Customer Email = mail"})
    html = client.post(reverse("identity:simulation"), data).content.decode()
    assert "shop: unknown identifier types mail." in html
    assert "simulation-report" not in html


def test_metrics_page_queries_do_not_grow_with_sources_or_history(client, make_user, graph):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from profiles.models import Source

    client.force_login(make_user("marketer"))
    url = reverse("identity:metrics") + "?live=1"
    client.get(url)  # warm the session and permission caches alike for both runs
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for index in range(3):
        Source.objects.create(name=f"Extra {index}", slug=f"extra-{index}", kind=Source.CSV)
        identity_metrics_snapshot()
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)


def test_metrics_page_shows_a_fresh_snapshot_and_computes_on_request(client, make_user, graph):
    from datetime import timedelta

    from django.utils import timezone

    snapshot = identity_metrics_snapshot()
    Profile.objects.filter(status=Profile.ACTIVE).update(status=Profile.DELETED)  # the graph moves on
    client.force_login(make_user("marketer"))
    url = reverse("identity:metrics")

    html = client.get(url).content.decode()
    assert "Figures from the snapshot of" in html and "<strong>5</strong>" in html
    live = client.get(url, {"live": "1"}).content.decode()
    assert "Figures computed now" in live and "<strong>0</strong>" in live

    IdentityMetricSnapshot.objects.filter(pk=snapshot.pk).update(captured_at=timezone.now() - timedelta(hours=3))
    stale = client.get(url).content.decode()
    assert "Figures computed now" in stale and "<strong>0</strong>" in stale


def test_percentages_never_round_to_all_or_nothing():
    from identity.templatetags.identity_format import percent, share

    assert share(912, 914) == "99.8%" and share(9999, 10000) == "99.9%" and share(3, 3) == "100%"
    assert share(1, 5000) == "0.1%" and share(0, 5) == "0%" and share(1, 0) == "–"
    assert percent(0.4) == "40%" and percent(None) == "–"
