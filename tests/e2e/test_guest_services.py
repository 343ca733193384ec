"""Guest services approves one pending pair in the review queue (the two profiles merge), then
unmerges it from the merged profile's page and sees both profiles restored, each with its own
identifiers."""

import pytest
from playwright.sync_api import expect

from cdp_site import pii
from identity.models import IdentityLink, Merge
from identity.selectors import identifier_find
from profiles.models import Profile
from profiles.processing import raw_events_process
from tests.identity.review.conftest import propose
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

EMAIL, PHONE = "ada@example.com", "+14155550100"


@pytest.fixture
def pending_pair(send):
    """Ada by email and Ada by phone: two profiles a probabilistic rule was not sure enough to join."""
    send(event("page.viewed", ids=[("email", EMAIL)], traits={"first_name": "Ada", "city": "London"}))
    send(event("page.viewed", ids=[("phone", PHONE)], traits={"first_name": "Ada"}))
    raw_events_process()
    return propose(profile_of("email", EMAIL), profile_of("phone", PHONE), 0.72)


def identifiers_shown(page):
    return page.get_by_role("heading", name="Identifiers").locator("xpath=..").locator("tbody tr td:nth-child(2)")


def test_guest_services_approves_a_pair_then_unmerges_it(pending_pair, make_user, page, site):
    email_profile, phone_profile = profile_of("email", EMAIL).pk, profile_of("phone", PHONE).pk
    masked_email = pii.identifier_masked(identifier_find(type_slug="email", raw_value=EMAIL))
    masked_phone = pii.identifier_masked(identifier_find(type_slug="phone", raw_value=PHONE))
    assert masked_email != masked_phone and EMAIL not in masked_email
    site.log_in(page, make_user("guest_services"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Merge review").click()
    expect(page.locator("#queue-count")).to_have_text("1 link waiting")
    page.get_by_role("link", name=f"Compare #{pending_pair.pk}").click()
    expect(page.get_by_role("heading", name=f"Link #{pending_pair.pk}")).to_contain_text("pending review")
    page.get_by_label("Note").fill("Same first name, same studio, confirmed at the desk")
    page.get_by_role("button", name="Approve: merge the two profiles").click()
    expect(page.get_by_text("Approved 1 link; 1 merge made.")).to_be_visible()
    expect(page.locator("#queue-count")).to_have_text("0 links waiting")

    merge = Merge.objects.get(link=pending_pair)
    assert {merge.survivor_id, merge.absorbed_id} == {email_profile, phone_profile}
    # The merged profile holds both identifiers; its merge history offers the unmerge.
    page.goto(f"/profiles/{merge.survivor_id}/")
    expect(identifiers_shown(page)).to_have_text([masked_email, masked_phone], use_inner_text=True, ignore_case=False)
    history = page.locator("section", has=page.get_by_role("heading", name="Merge history"))
    history.get_by_label("Reason").fill("Two different people called Ada")
    history.get_by_role("button", name="Unmerge").click()
    expect(page.get_by_text(f"Merge #{merge.pk} undone: profile #{merge.absorbed_id} restored")).to_be_visible()

    # Both profiles are back, each with its own identifier only.
    own = {email_profile: masked_email, phone_profile: masked_phone}
    for profile_id in (merge.absorbed_id, merge.survivor_id):
        page.goto(f"/profiles/{profile_id}/")
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"#{profile_id}")
        expect(identifiers_shown(page)).to_have_text([own[profile_id]])
    assert Profile.objects.filter(pk__in=own, status=Profile.ACTIVE).count() == 2
    pending_pair.refresh_from_db()
    assert pending_pair.status == IdentityLink.REJECTED
