"""Who may open what: every named page and API endpoint of the project, for every role.

The table is the design: a URL the resolver knows that is neither in MATRIX nor in EXCLUDED fails
the suite, so a new page or endpoint cannot ship without deciding who may use it. For each URL:
anonymous visitors go to the login page (pages) or get 401 (API); roles outside `allowed` get 403
and nothing in the database changes; roles inside get anything but 401/403. Pages and list/detail
endpoints are read with GET; actions are POSTed with a harmless body.
"""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from activations.destinations import destination_save
from activations.models import Destination, Sync, SyncRun, Trigger
from activations.triggers import trigger_save
from cdp_site.audit import audit_record
from cdp_site.models import ApiToken, AuditEntry
from cdp_site.roles import ROLES
from identity.models import IdentityLink, Merge, Unmerge
from identity.services import merge_unmerge, profiles_link
from profiles.models import CsvImport, Profile, RawEvent
from profiles.processing import raw_events_process
from segments.computed import computed_trait_create
from segments.services import segment_create
from tests.identity.test_services import profile_of
from tests.profiles.processing.conftest import event

pytestmark = pytest.mark.django_db

M, GS, PO, IE = "marketer", "guest_services", "privacy_officer", "integration_engineer"
EVERYONE = frozenset(ROLES)
NOBODY = frozenset()

# Named URLs deliberately outside the matrix, and why.
EXCLUDED = {
    # Django's login, logout and password pages: for everyone, before any role applies.
    "login": "accounts/",
    "logout": "accounts/",
    "password_change": "accounts/",
    "password_change_done": "accounts/",
    "password_reset": "accounts/",
    "password_reset_done": "accounts/",
    "password_reset_confirm": "accounts/",
    "password_reset_complete": "accounts/",
    # Ingestion: authenticated by a source's write key (tracking) or its signature (webhooks).
    "tracking_call": "/v1/ tracking API, write key",
    "webhook_receive": "/webhooks/, signatures",
}
# The Django admin (staff only, its own per-model permissions). Static files are served outside the
# URLconf (whitenoise or the web server), so the resolver does not list them.
EXCLUDED_NAMESPACES = ("admin",)
# Outside /api/ but answered like the API (401 to anonymous callers, token accepted): scrapers.
TOKEN_URLS = {"/metrics"}


def _pk(name):
    return lambda world: {"pk": getattr(world, name).pk}


def _slug(name):
    return lambda world: {"slug": getattr(world, name).slug}


@dataclass(frozen=True)
class Case:
    allowed: frozenset
    method: str = "get"
    kwargs: object = None  # world -> URL kwargs
    data: dict = field(default_factory=dict)
    public: bool = False  # anonymous visitors may use it too


def get(*roles, kwargs=None, public=False):
    return Case(frozenset(roles), "get", kwargs, public=public)


def post(*roles, kwargs=None, data=None):
    return Case(frozenset(roles), "post", kwargs, data or {})


VIEWERS = (M, PO, IE)  # activations are read by marketers, privacy officers and integration engineers

MATRIX = {
    # -- cdp_site ---------------------------------------------------------------------------------
    "home": get(*EVERYONE),
    "audit:log": get(PO),
    "profile_reveal": post(GS, PO, IE, kwargs=_pk("profile")),
    "api-schema": get(*EVERYONE, public=True),  # the OpenAPI description: no data
    "audit-entry-list": get(PO),
    "audit-entry-detail": get(PO, kwargs=_pk("audit_entry")),
    "governance:retention": get(PO, IE),
    "governance:retention_policy_edit": post(PO, kwargs=lambda world: {"data_class": world.retention_class}),
    "governance:profile_health": get(PO, IE),
    "governance:profile_health_run": post(PO),
    # -- profiles ---------------------------------------------------------------------------------
    "profiles:profile_list": get(*EVERYONE),
    "profiles:profile_detail": get(*EVERYONE, kwargs=_pk("profile")),
    "profiles:source_list": get(IE),
    "profiles:source_new": get(IE),
    "profiles:source_detail": get(IE, kwargs=_slug("source")),
    "profiles:source_rotate": post(IE, kwargs=_slug("source")),
    "profiles:source_retire_secrets": post(IE, kwargs=_slug("source")),
    "profiles:raw_event_list": get(PO, IE),
    "profiles:raw_event_replay": post(IE, data={"ids": []}),
    "profiles:raw_event_detail": get(PO, IE, kwargs=_pk("raw_event")),
    "profiles:schema_drift": get(IE),
    "profiles:csv_import_list": get(IE),
    "profiles:csv_import_new": get(IE),
    "profiles:csv_import_detail": get(IE, kwargs=_pk("csv_import")),
    "profiles:csv_import_progress": get(IE, kwargs=_pk("csv_import")),
    "profile-list": get(*EVERYONE),
    "profile-detail": get(*EVERYONE, kwargs=_pk("profile")),
    "profile-events": get(*EVERYONE, kwargs=_pk("profile")),
    "source-list": get(IE),
    "source-detail": get(IE, kwargs=_slug("source")),
    "raw-event-list": get(PO, IE),
    "raw-event-detail": get(PO, IE, kwargs=_pk("raw_event")),
    "raw-event-replay": post(IE, kwargs=_pk("raw_event")),
    # -- identity ---------------------------------------------------------------------------------
    "identity:review_queue": get(GS, IE),
    "identity:review_decide": post(GS),
    "identity:review_link": get(GS, IE, kwargs=_pk("pending_link")),
    "identity:merge_unmerge": post(GS, kwargs=_pk("merge")),
    "identity:metrics": get(M, GS, IE),
    "identity:simulation": get(M, GS, IE),
    "review-queue": get(GS, IE),
    "merge-list": get(GS, PO, IE),
    "merge-detail": get(GS, PO, IE, kwargs=_pk("merge")),
    "merge-unmerge": post(GS, kwargs=_pk("merge")),
    "unmerge-list": get(GS, PO),
    "unmerge-detail": get(GS, PO, kwargs=_pk("unmerge")),
    "identity-link-list": get(GS, IE),
    "identity-link-detail": get(GS, IE, kwargs=_pk("pending_link")),
    "identity-link-approve": post(GS, kwargs=_pk("pending_link")),
    "identity-link-reject": post(GS, kwargs=_pk("pending_link")),
    "identity-metrics": get(M, GS, IE),
    # -- operations metrics (monitoring): integration engineers, through profiles.view_source ------
    "prometheus-metrics": get(IE),
    "operations-metrics": get(IE),
    # -- source audit, scorecard, integration plan --------------------------------------------------
    "source_audit:audit": get(IE),
    "source_audit:source_audit": get(IE, kwargs=_slug("source")),
    "source_audit:integration_plan": get(IE),
    "source_audit:run": post(IE),
    "source-audit": get(IE),
    "source-audit-run": post(IE),
    # -- health dashboard, trends, alerts -----------------------------------------------------------
    "operations:dashboard": get(*EVERYONE),
    "operations:alert_list": get(*EVERYONE),
    "operations:alert_rule_new": get(IE),
    "operations:alert_rule_edit": get(IE, kwargs=_pk("alert_rule")),
    "operations:alert_rule_delete": post(IE, kwargs=_pk("alert_rule")),
    "operations:alert_acknowledge": post(IE, kwargs=_pk("alert")),
    "operations-trends": get(*EVERYONE),
    "operations-alerts": get(*EVERYONE),
    "operations-alert-rule-list": get(*EVERYONE),
    "operations-alert-rule-detail": get(*EVERYONE, kwargs=_pk("alert_rule")),
    # -- pilot gates, handoff pack ------------------------------------------------------------------
    "pilot:gates": get(M, PO, IE),
    "pilot:signoff_new": post(PO, IE),
    "pilot:settings": post(IE),
    "pilot:handoff": get(IE),
    "pilot:handoff_download": get(IE),
    "pilot-gates": get(M, PO, IE),
    "pilot-handoff": get(IE),
    # -- security: API tokens, login (issue 8) --------------------------------------------------------
    # One's own tokens: any signed-in user. Revoking another user's token answers 404 (allowed, changes nothing).
    "tokens:list": get(*EVERYONE),
    "tokens:issue": post(*EVERYONE),
    "tokens:revoke": post(*EVERYONE, kwargs=_pk("api_token")),
    # -- segments ---------------------------------------------------------------------------------
    "segments:segment_list": get(M),
    "segments:segment_new": get(M),
    "segments:builder_new": get(M),
    "segments:builder_update": post(M),
    "segments:builder_save": post(M),
    "segments:builder_edit": get(M, kwargs=_slug("segment")),
    "segments:segment_detail": get(M, kwargs=_slug("segment")),
    "segments:segment_version_new": post(M, kwargs=_slug("segment")),
    "segments:segment_rollback": post(M, kwargs=lambda world: {"slug": world.segment.slug, "number": 1}),
    "segment-list": get(M),
    "segment-preview": post(M),
    "segment-detail": get(M, kwargs=_slug("segment")),
    "segment-diff": get(M, kwargs=_slug("segment")),
    "segment-publish": post(M, kwargs=_slug("segment")),
    "segment-rollback": post(M, kwargs=_slug("segment")),
    "segment-versions": get(M, kwargs=_slug("segment")),
    "computed-trait-list": get(M),
    "computed-trait-detail": get(M, kwargs=lambda world: {"key": world.computed_trait.key}),
    # -- activations ------------------------------------------------------------------------------
    "activations:destination_list": get(*VIEWERS),
    "activations:destination_new": get(IE),
    "activations:destination_detail": get(*VIEWERS, kwargs=_slug("destination")),
    "activations:destination_edit": get(IE, kwargs=_slug("destination")),
    "activations:destination_test": post(IE, kwargs=_slug("destination")),
    "activations:sync_list": get(*VIEWERS),
    "activations:sync_new": get(M, IE),
    "activations:sync_detail": get(*VIEWERS, kwargs=_slug("sync")),
    "activations:sync_edit": get(M, IE, kwargs=_slug("sync")),
    "activations:sync_lift": get(*VIEWERS, kwargs=_slug("sync")),
    "activations:sync_run": post(M, IE, kwargs=_slug("sync"), data={"dry_run": "1"}),
    "activations:run_detail": get(*VIEWERS, kwargs=_pk("run")),
    "activations:run_resume": post(M, IE, kwargs=_pk("run")),
    "activations:run_retry_failed": post(IE, kwargs=_pk("run")),
    "activations:reconciliation": get(*VIEWERS),
    "activations:reconciliation_csv": get(*VIEWERS),
    "activations:runbook": get(*VIEWERS),
    "activations:runbook_download": get(*VIEWERS),
    "activations:trigger_list": get(*VIEWERS),
    "activations:trigger_new": get(M, IE),
    "activations:trigger_detail": get(*VIEWERS, kwargs=_slug("trigger")),
    "activations:trigger_edit": get(M, IE, kwargs=_slug("trigger")),
    "activations:trigger_lift": get(*VIEWERS, kwargs=_slug("trigger")),
    "destination-list": get(*VIEWERS),
    "destination-detail": get(*VIEWERS, kwargs=_slug("destination")),
    "destination-test": post(IE, kwargs=_slug("destination")),
    "sync-list": get(*VIEWERS),
    "sync-detail": get(*VIEWERS, kwargs=_slug("sync")),
    "sync-lift": get(*VIEWERS, kwargs=_slug("sync")),
    "sync-run": post(M, IE, kwargs=_slug("sync"), data={"dry_run": True}),
    "sync-run-list": get(*VIEWERS),
    "sync-run-detail": get(*VIEWERS, kwargs=_pk("run")),
    "sync-run-records": get(*VIEWERS, kwargs=_pk("run")),
    "sync-run-retry-failed": post(IE, kwargs=_pk("run")),
    "reconciliation-list": get(*VIEWERS),
    "trigger-list": get(*VIEWERS),
    "trigger-detail": get(*VIEWERS, kwargs=_slug("trigger")),
    "trigger-latency": get(*VIEWERS, kwargs=_slug("trigger")),
    "trigger-lift": get(*VIEWERS, kwargs=_slug("trigger")),
    "trigger-send-list": get(*VIEWERS),
    # -- consent and privacy requests -------------------------------------------------------------
    "consent:consent_record_new": get(GS, PO, kwargs=_pk("profile")),
    "consent:propagation": get(PO),
    "consent-record-list": get(M, GS, PO),
    "consent-record-detail": get(M, GS, PO, kwargs=_pk("consent_record")),
    "consent-propagation-list": get(PO),
    "privacy:request_list": get(PO),
    "privacy:request_new": get(PO),
    "privacy:request_detail": get(PO, kwargs=_pk("privacy_request")),
    "privacy:request_extend": post(PO, kwargs=_pk("privacy_request")),
    "privacy:request_confirm_receipt": post(PO, kwargs=_pk("privacy_request")),
    "privacy:request_retry": post(PO, kwargs=_pk("privacy_request")),
    "privacy:request_archive": get(PO, kwargs=_pk("privacy_request")),
    "privacy-request-list": get(PO),
    "privacy-request-detail": get(PO, kwargs=_pk("privacy_request")),
    "privacy-request-archive": get(PO, kwargs=_pk("privacy_request")),
    "privacy-request-confirm-receipt": post(PO, kwargs=_pk("privacy_request")),
    "privacy-request-extend": post(PO, kwargs=_pk("privacy_request")),
    "privacy-request-retry": post(PO, kwargs=_pk("privacy_request")),
}


def project_urls() -> dict[str, str]:
    """Every URL pattern of the project as {name: route}; unnamed ones under their route."""
    found = {}

    def walk(patterns, prefix="", namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if namespace.split(":")[0] in EXCLUDED_NAMESPACES:
                    continue
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
                found[name or f"<unnamed {route}>"] = route

    walk(get_resolver().url_patterns)
    return found


def test_every_url_of_the_project_is_in_the_matrix():
    urls = set(project_urls())
    missing = sorted(urls - set(MATRIX) - set(EXCLUDED))
    assert not missing, f"decide who may use these (add them to MATRIX or, with a reason, to EXCLUDED): {missing}"
    stale = sorted(set(MATRIX) - urls) + sorted(set(EXCLUDED) - urls)
    assert not stale, f"these are no longer URLs of the project: {stale}"


# -- the world the URLs point into -----------------------------------------------------------------


class World:
    """One of each object a URL names, built on first use."""

    def __init__(self, send, source):
        self.send = send
        self.source = source

    @cached_property
    def people(self):
        for ids, traits in (
            ([("email", "ada@example.com"), ("user_id", "ada")], {"first_name": "Ada", "plan": "gold"}),
            ([("phone", "+14155550100")], {"first_name": "Ada"}),
            ([("email", "bo@example.com")], {"first_name": "Bo"}),
            ([("user_id", "bo-1")], {"first_name": "Bo"}),
            ([("email", "cy@example.com")], {}),
            ([("user_id", "cy-1")], {}),
        ):
            self.send(event("page.viewed", ids=ids, traits=traits))
        raw_events_process()
        return True

    def _link(self, a, b, *, activate):
        assert self.people
        return profiles_link(
            profile_a_id=profile_of(*a).pk,
            profile_b_id=profile_of(*b).pk,
            kind=IdentityLink.PROBABILISTIC,
            rule="probabilistic",
            confidence=0.7,
            evidence={"match_run_id": 1},
            activate=activate,
            actor="rule:probabilistic",
        )

    @cached_property
    def profile(self):
        assert self.people
        return profile_of("email", "ada@example.com")

    @cached_property
    def raw_event(self):
        assert self.people
        return RawEvent.objects.order_by("pk").first()

    @cached_property
    def pending_link(self):
        outcome = self._link(("email", "ada@example.com"), ("phone", "+14155550100"), activate=False)
        return IdentityLink.objects.get(pk=outcome.link_id)

    @cached_property
    def merge(self):
        outcome = self._link(("email", "bo@example.com"), ("user_id", "bo-1"), activate=True)
        return Merge.objects.get(pk=outcome.merge_id)

    @cached_property
    def unmerge(self):
        outcome = self._link(("email", "cy@example.com"), ("user_id", "cy-1"), activate=True)
        return merge_unmerge(merge_id=outcome.merge_id, actor="user:gina", reason="two people")

    @cached_property
    def csv_import(self):
        return CsvImport.objects.create(source=self.source, file_name="people.csv", mapping={})

    @cached_property
    def segment(self):
        definition = {"all": [{"trait": "plan", "op": "eq", "value": "gold"}]}
        return segment_create(slug="gold", name="Gold", definition=definition, note="", author="test")

    @cached_property
    def computed_trait(self):
        return computed_trait_create(key="orders", name="Orders", kind="count", event_type="order.completed")

    @cached_property
    def destination(self):
        return destination_save(
            name="Hook",
            slug="hook",
            kind="webhook",
            base_url="http://127.0.0.1:9/hook",
            fields=[{"name": "email", "source": "identifier:email"}, {"name": "plan", "source": "trait:plan"}],
            idempotency_key="email",
            operations=["upsert", "remove", "message"],
            consent_purpose="email_marketing",
            pii_mode="cleartext",
            secrets={"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            actor="test",
        )

    @cached_property
    def sync(self):
        return Sync.objects.create(
            name="Gold", slug="gold-hook", segment=self.segment, destination=self.destination, mode="upsert"
        )

    @cached_property
    def run(self):
        return SyncRun.objects.create(
            sync=self.sync, triggered_by="test", created_at=timezone.now(), status=SyncRun.COMPLETED
        )

    @cached_property
    def trigger(self):
        return trigger_save(
            name="Order",
            slug="order",
            kind=Trigger.EVENT,
            destination=self.destination,
            event_type="order.completed",
            template={"type": "thanks", "to": "{email}"},
        )

    @cached_property
    def audit_entry(self):
        return audit_record(actor="user:gina", action="merge.approve", summary="Approved link 1", link_id=1)

    @cached_property
    def consent_record(self):
        model = apps.get_model("consent", "ConsentRecord")
        return model.objects.create(
            profile=self.profile, purpose="email_marketing", is_granted=True, captured_at=timezone.now()
        )

    @cached_property
    def privacy_request(self):
        model = apps.get_model("consent", "PrivacyRequest")
        now = timezone.now()
        return model.objects.create(kind="access", regulation="ccpa", received_at=now, due_at=now + timedelta(days=45))

    @cached_property
    def retention_class(self):
        return apps.get_model("cdp_site", "RetentionPolicy").objects.order_by("data_class").first().data_class

    @cached_property
    def alert_rule(self):
        return apps.get_model("cdp_site", "AlertRule").objects.create(
            name="Errors", metric="ingestion_error_ratio", threshold=0.05, created_by="test"
        )

    @cached_property
    def alert(self):
        return apps.get_model("cdp_site", "Alert").objects.create(
            rule=self.alert_rule, value_at_raise=0.5, last_value=0.5, raised_at=timezone.now()
        )

    @cached_property
    def api_token(self):
        """A token of a user with no role: every role's revoke of it answers 404 and changes nothing."""
        owner = apps.get_model("auth", "User").objects.create_user(username="token-owner", password="pw-123-secret")
        return ApiToken.issue(user=owner, name="world")[0]


@pytest.fixture
def world(roles, send, canonical_source):
    return World(send, canonical_source)


@pytest.fixture
def clients(roles, make_user):
    """One page client and one API client (a real token) per role."""
    from django.test import Client

    made = {}
    for role in ROLES:
        user = make_user(role)
        page = Client()
        page.force_login(user)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user=user)[1]}")
        made[role] = (page, api)
    return made


WATCHED_APPS = ("cdp_site", "profiles", "identity", "consent", "segments", "activations")
UNWATCHED = {"cdp_site.apitoken"}  # last_used_at moves with every authenticated API call


def database_state() -> dict:
    """Every row of the project's tables: a refused request must leave it exactly as it was."""
    state = {}
    for model in apps.get_models():
        label = model._meta.label_lower
        if model._meta.app_label in WATCHED_APPS and label not in UNWATCHED:
            state[label] = list(model.objects.order_by("pk").values_list())
    return state


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(label for label in before.keys() | after.keys() if before.get(label) != after.get(label))


def send(client, case: Case, url: str, *, is_api: bool):
    if case.method == "get":
        return client.get(url)
    if is_api:
        return client.post(url, case.data, format="json")
    return client.post(url, case.data)


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_permission_matrix(world, clients, client, name):
    case = MATRIX[name]
    url = reverse(name, kwargs=case.kwargs(world) if case.kwargs else None)
    is_api = url.startswith("/api/") or url in TOKEN_URLS
    problems = []

    before = database_state()
    anonymous = send(APIClient() if is_api else client, case, url, is_api=is_api)
    if case.public:
        if anonymous.status_code in (401, 403) or is_login_redirect(anonymous):
            problems.append(f"anonymous: {anonymous.status_code}, expected a public answer")
    elif is_api and anonymous.status_code != 401:
        problems.append(f"anonymous: {anonymous.status_code}, expected 401")
    elif not is_api and not is_login_redirect(anonymous):
        problems.append(f"anonymous: {anonymous.status_code}, expected a redirect to the login page")

    for role in sorted(EVERYONE - case.allowed):
        response = send(clients[role][1 if is_api else 0], case, url, is_api=is_api)
        if response.status_code != 403:
            problems.append(f"{role}: {response.status_code}, expected 403")
    if not case.public:
        changed = changed_tables(before, database_state())
        if changed:
            problems.append(f"refused requests changed {changed}")

    for role in sorted(case.allowed):
        response = send(clients[role][1 if is_api else 0], case, url, is_api=is_api)
        if response.status_code in (401, 403) or is_login_redirect(response):
            problems.append(f"{role}: {response.status_code}, expected to be allowed")
    assert not problems, f"{case.method.upper()} {url} ({name}): " + "; ".join(problems)


# -- what a marketer must never do, spelled out -----------------------------------------------------


def test_a_marketer_cannot_unmerge_decide_links_see_pii_touch_destinations_or_read_the_audit_log(world, clients):
    page, api = clients[M]
    merge, link, destination, profile = world.merge, world.pending_link, world.destination, world.profile
    audit_entries = AuditEntry.objects.count()

    # Unmerge and review decisions: refused on the page and through the API; nothing moves.
    assert page.post(reverse("identity:merge_unmerge", args=[merge.pk]), {"reason": "x"}).status_code == 403
    assert api.post(f"/api/v1/merges/{merge.pk}/unmerge/", {"reason": "x"}, format="json").status_code == 403
    for decision in ("approve", "reject"):
        data = {"links": [link.pk], "decision": decision}
        assert page.post(reverse("identity:review_decide"), data).status_code == 403
        assert api.post(f"/api/v1/identity-links/{link.pk}/{decision}/", {}, format="json").status_code == 403
    assert Unmerge.objects.filter(merge=merge).count() == 0
    assert IdentityLink.objects.get(pk=link.pk).status == IdentityLink.PENDING_REVIEW

    # Personal data: masked on the page, no Reveal, and no way to ask for cleartext.
    html = page.get(reverse("profiles:profile_detail", args=[profile.pk])).content.decode()
    assert "ada@example.com" not in html and "Ada" not in html and "Reveal</button>" not in html
    assert page.post(reverse("profile_reveal", args=[profile.pk])).status_code == 403
    body = api.get(f"/api/v1/profiles/{profile.pk}/").json()
    assert "ada@example.com" not in json.dumps(body) and "Ada" not in json.dumps(body)
    assert api.get(f"/api/v1/profiles/{profile.pk}/", {"reveal": "1"}).status_code == 403

    # Destinations: no create, change or connection test, on the page or through the API.
    assert page.get(reverse("activations:destination_new")).status_code == 403
    assert page.post(reverse("activations:destination_new"), {"kind": "webhook", "slug": "x"}).status_code == 403
    assert page.post(reverse("activations:destination_edit", args=["hook"]), {"name": "Mine"}).status_code == 403
    assert page.post(reverse("activations:destination_test", args=["hook"])).status_code == 403
    assert api.post("/api/v1/destinations/", {"slug": "x", "kind": "webhook"}, format="json").status_code == 403
    assert api.patch("/api/v1/destinations/hook/", {"name": "Mine"}, format="json").status_code == 403
    assert api.post("/api/v1/destinations/hook/test/", {}, format="json").status_code == 403
    stored = Destination.objects.get(pk=destination.pk)
    assert (stored.name, stored.last_tested_at, Destination.objects.count()) == ("Hook", None, 1)

    # The audit log: neither the page nor the API; and all of the above wrote nothing to it.
    assert page.get(reverse("audit:log")).status_code == 403
    assert api.get("/api/v1/audit-log/").status_code == 403
    assert AuditEntry.objects.count() == audit_entries


def test_profiles_exist_for_the_world(world):
    """The world builds what the matrix points at (a guard against a silently empty fixture)."""
    assert world.merge.survivor.status == Profile.ACTIVE
    assert world.unmerge.restored_id and world.pending_link.status == IdentityLink.PENDING_REVIEW
