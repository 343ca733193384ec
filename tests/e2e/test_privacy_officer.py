"""A privacy officer records a consent withdrawal on a profile page, then records a deletion request
for that person; the worker runs it to completion and the request page says so."""

import pytest
from playwright.sync_api import expect

from consent.models import ConsentRecord, PrivacyRequest, Tombstone
from identity.selectors import identifier_find
from profiles.models import Profile
from tests.activations import conftest as activation_fixtures

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ingest = activation_fixtures.ingest
EMAIL = "oriel@example.org"


@pytest.fixture
def person(ingest):
    ingest(email="bea@example.org", traits={"first_name": "Bea"}, consent={"email_marketing": True})
    return ingest(email=EMAIL, traits={"first_name": "Oriel"}, consent={"email_marketing": True})


def test_privacy_officer_records_a_withdrawal_and_runs_a_deletion(person, make_user, page, site):
    site.log_in(page, make_user("privacy_officer"))

    page.goto(f"/profiles/{person}/")
    consent = page.locator("section", has=page.get_by_role("heading", name="Consent"))
    expect(consent.locator("tbody tr")).to_contain_text(["granted"])
    page.get_by_test_id("record-consent").click()
    page.get_by_label("Purpose:", exact=True).select_option(value="email_marketing")
    page.get_by_label("Withdrawn: stop using it").check()
    page.get_by_label("Note:", exact=True).fill("Asked at the front desk to stop the newsletter")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_text("Email marketing: consent withdrawn")).to_be_visible()
    expect(consent.locator("tbody tr")).to_contain_text(["withdrawn"])
    record = ConsentRecord.objects.filter(profile_id=person).latest("id")
    assert (record.purpose, record.is_granted) == ("email_marketing", False)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Privacy requests").click()
    page.get_by_role("link", name="New deletion or access request").click()
    page.get_by_label("Kind").select_option(label="Deletion (erasure)")
    page.get_by_label("Regulation").select_option(label="GDPR")
    page.get_by_label("Identifiers").fill(f"email:{EMAIL}")
    page.get_by_role("button", name="Record the request").click()
    expect(page.get_by_text("runs in the background")).to_be_visible()
    # The worker runs the request; the officer reloads the page until it says so.
    site.reload_until(page, page.get_by_test_id("status"), "Completed")
    expect(page.get_by_test_id("steps")).not_to_contain_text("waiting")
    expect(page.get_by_test_id("steps").locator(".badge.bad")).to_have_count(0)

    request = PrivacyRequest.objects.get()
    assert (request.kind, request.status, request.profiles_found) == ("deletion", "completed", [person])
    assert Profile.objects.get(pk=person).status == Profile.DELETED
    assert identifier_find(type_slug="email", raw_value=EMAIL) is None
    assert Tombstone.objects.count() == 1
    assert Profile.objects.filter(status=Profile.ACTIVE).count() == 1  # Bea is untouched
