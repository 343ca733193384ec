"""A marketer builds an audience from the builder's menus, watches its count, saves it and a second
version, then creates a sync to a live destination and dry-runs it: the worker completes the run
and the destination receives nothing."""

import re

import pytest
from playwright.sync_api import expect

from activations.local_destination import LocalDestination
from activations.models import SyncRun
from segments.models import Segment
from tests.activations import conftest as activation_fixtures

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ingest = activation_fixtures.ingest
webhook_destination = activation_fixtures.webhook_destination


@pytest.fixture
def destination_server():
    with LocalDestination() as server:
        yield server


@pytest.fixture
def crm(ingest, webhook_destination, destination_server):
    """Four people through the real pipeline; an integration engineer's webhook destination."""
    granted = {"email_marketing": True}
    ingest(email="ada@example.com", traits={"plan": "gold", "city": "London"}, consent=granted)
    ingest(email="grace@example.com", traits={"plan": "gold", "city": "Paris"}, consent=granted)
    ingest(email="alan@example.com", traits={"plan": "gold", "city": "London"}, consent=granted)
    ingest(email="edsger@example.com", traits={"plan": "silver", "city": "London"}, consent=granted)
    return webhook_destination(
        destination_server.url, name="CRM webhook", slug="crm-webhook", actor="user:integration-engineer"
    )


def audience_count(page):
    return page.locator("#builder-preview .builder-count")


def redrawn(page, action) -> None:
    """Do `action` on a builder control and wait until the builder has redrawn its conditions: every
    control answers with a new form, and a control of the old one is no longer on the page."""
    page.locator("#builder-form > *").first.evaluate("element => element.setAttribute('data-e2e-old', '')")
    action()
    expect(page.locator("#builder-form [data-e2e-old]")).to_have_count(0)


def test_marketer_builds_a_segment_versions_it_and_dry_runs_a_sync(crm, destination_server, make_user, page, site):
    marketer = make_user("marketer")
    site.log_in(page, marketer)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment", exact=True).click()
    expect(page.get_by_role("heading", name="New segment")).to_be_visible()
    expect(page.locator("#builder-preview")).to_contain_text("Add a condition to see the audience.")

    # plan is gold: three of four people.
    page.get_by_label("New condition").select_option(label="Trait")
    redrawn(page, lambda: page.get_by_role("button", name="Add", exact=True).click())
    redrawn(page, lambda: page.locator("#b-all-0-trait").select_option(value="plan"))
    redrawn(page, lambda: page.locator("#b-all-0-op").select_option(label="is"))
    page.locator("#b-all-0-value").fill("gold")
    redrawn(page, lambda: page.locator("#b-all-0-value").press("Tab"))
    expect(page.locator("#builder-definition")).to_have_value(
        re.compile(r'\{\s*"trait": "plan",\s*"op": "eq",\s*"value": "gold"\s*\}')
    )
    expect(audience_count(page)).to_have_attribute("data-count", "3")
    expect(page.locator("#builder-preview")).to_contain_text("3 of 4 active profiles match.")

    page.get_by_label("Slug").fill("gold-members")
    page.get_by_label("Name").fill("Gold members")
    page.get_by_label("Note").fill("Gold plan, for the CRM")
    page.get_by_role("button", name="Create the segment and publish version 1").click()
    expect(page.get_by_text("Segment Gold members created and published (version 1).")).to_be_visible()

    # A second version: only the London gold members.
    page.get_by_role("link", name="Open in the builder").click()
    expect(audience_count(page)).to_have_attribute("data-count", "3")
    page.get_by_label("New condition").select_option(label="Trait")
    redrawn(page, lambda: page.get_by_role("button", name="Add", exact=True).click())
    redrawn(page, lambda: page.locator("#b-all-1-trait").select_option(value="city"))
    redrawn(page, lambda: page.locator("#b-all-1-op").select_option(label="is"))
    page.locator("#b-all-1-value").fill("London")
    redrawn(page, lambda: page.locator("#b-all-1-value").press("Tab"))
    expect(audience_count(page)).to_have_attribute("data-count", "2")
    page.get_by_label("Note").fill("London only")
    page.get_by_role("button", name="Save as a new version and publish").click()
    expect(page.get_by_text("Version 2 saved and published.")).to_be_visible()
    expect(page.locator("tr", has_text="London only")).to_contain_text("published")
    segment = Segment.objects.select_related("published_version").get(slug="gold-members")
    assert segment.published_version.number == 2
    assert segment.published_version.definition == {
        "all": [
            {"trait": "plan", "op": "eq", "value": "gold"},
            {"trait": "city", "op": "eq", "value": "London"},
        ]
    }

    # Publishing queues the segment's membership refresh: the worker computes version 2's members
    # right away (not at the 15-minute schedule), so the sync below sends version 2's audience.
    site.reload_until(page, page.locator("section", has_text="Membership over time"), "v2")
    latest = page.locator("section", has_text="Membership over time").locator("tbody tr").last.locator("td")
    expect(latest).to_have_text([re.compile(r"\d{4}-"), "v2", "2", "+0", "−1"])

    # A sync of the segment to the CRM, then a dry run.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Syncs").click()
    page.get_by_role("link", name="New sync").click()
    page.get_by_label("Name:", exact=True).fill("Gold to CRM")
    page.get_by_label("Slug:", exact=True).fill("gold-to-crm")
    page.get_by_label("Segment:", exact=True).select_option(value="gold-members")
    page.get_by_label("Destination:", exact=True).select_option(value=crm.slug)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Sync Gold to CRM created.")).to_be_visible()
    expect(page.get_by_test_id("problems")).to_have_count(0)

    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Dry run #\d+ of Gold to CRM"))).to_be_visible()
    # The request only created the run; the worker does it. Reload, as the marketer would.
    site.reload_until(page, page.locator("h1"), "Completed")
    heading = page.locator("h1")
    expect(heading).to_contain_text("dry run")
    expect(page.get_by_test_id("delta")).to_have_text("a dry run applies nothing: 2 operations would be sent")
    expect(page.get_by_test_id("requests")).to_contain_text("Nothing was sent.")

    run = SyncRun.objects.get(sync__slug="gold-to-crm")
    assert (run.is_dry_run, run.status, run.planned, run.applied, run.segment_version.number) == (
        True,
        SyncRun.COMPLETED,
        2,
        0,
        2,
    )
    assert destination_server.requests == []
