"""Operational figures for monitoring: the service, the Prometheus text and the two endpoints."""

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from activations.models import SyncRun
from cdp_site.operations_metrics import collect_figures, prometheus_text
from consent.requests_models import PrivacyRequest, PrivacyRequestStep
from identity.models import IdentityLink
from profiles.models import RawEvent, SchemaDrift
from profiles.sources import source_create
from tests.cdp_site.test_permission_matrix import World

pytestmark = pytest.mark.django_db

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text: str) -> dict:
    """{name: {"help": str, "type": str, "samples": {labels tuple: float}}}; fails on a bad line."""
    metrics: dict[str, dict] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            metrics.setdefault(name, {"samples": {}})[kind.lower()] = rest
            continue
        assert not line.startswith("#") and line, f"unexpected line {line!r}"
        match = SAMPLE.match(line)
        assert match, f"not a sample: {line!r}"
        name, _, labels_text, value = match.groups()
        labels = ()
        if labels_text:
            pairs = LABEL.findall(labels_text)
            assert "".join(f'{k}="{v}"{sep}' for k, v, sep in pairs) == labels_text, line
            labels = tuple((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")) for k, v, _ in pairs)
        samples = metrics.setdefault(name, {"samples": {}})["samples"]
        assert labels not in samples, f"duplicate sample {line!r}"
        samples[labels] = float(value)
    for name, metric in metrics.items():
        assert name.startswith("cdp_") and not name.endswith("_total"), name
        assert metric.get("help") and metric.get("type") == "gauge", name
    return metrics


@pytest.fixture
def seeded(send, canonical_source):
    source = canonical_source
    world = World(send, source)
    link = world.pending_link  # processes the people's raw events first
    run = world.run
    now = timezone.now()
    for minutes, status, processed_after in (
        (50, RawEvent.PROCESSED, 2),
        (40, RawEvent.PROCESSED, 4),
        (30, RawEvent.PROCESSED, 6),
        (20, RawEvent.QUARANTINED, None),
        (10, RawEvent.PENDING, None),
    ):
        received = now - timedelta(minutes=minutes)
        event = send(source=source)
        RawEvent.objects.filter(pk=event.pk).update(
            received_at=received,
            status=status,
            processed_at=received + timedelta(seconds=processed_after) if processed_after else None,
        )
    stale, _ = source_create(name='Old "POS"', kind="csv", freshness_sla_minutes=30)
    old = send(source=stale)
    RawEvent.objects.filter(pk=old.pk).update(
        received_at=now - timedelta(hours=3), status=RawEvent.PROCESSED, processed_at=now - timedelta(hours=3)
    )
    SchemaDrift.objects.create(
        source=source, event_type="page.viewed", property_name="x", first_seen_at=now, last_seen_at=now
    )
    SyncRun.objects.filter(pk=run.pk).update(planned=10, applied=8, finished_at=now)
    return {"source": source, "stale": stale, "link": link, "now": now}


def test_figures(seeded):
    figures = collect_figures(now=seeded["now"])
    ingestion = figures["ingestion"]
    # The World's six processed people events plus the five seeded here and the stale source's one.
    by_status = ingestion["raw_events_by_status"]
    assert by_status["quarantined"] == 1 and by_status["pending"] == 1
    assert ingestion["raw_events_by_source"][seeded["stale"].slug]["processed"] == 1
    assert ingestion["pending"] == 1
    assert ingestion["oldest_pending_age_seconds"] == pytest.approx(600, abs=1)
    latency = ingestion["latency"]
    seeded_latencies = RawEvent.objects.filter(
        status=RawEvent.PROCESSED, processed_at__gte=seeded["now"] - timedelta(hours=1)
    ).count()
    assert latency["count"] == seeded_latencies
    assert latency["p95_seconds"] <= 6 and latency["p50_seconds"] >= 0
    hour = ingestion["last_hour"]
    assert hour["quarantined_or_failed"] == 1 and hour["error_ratio"] == pytest.approx(1 / hour["received"], abs=1e-4)

    freshness = {row["source"]: row for row in figures["freshness"]}
    assert freshness[seeded["stale"].slug]["sla_breached"] == 1
    assert freshness[seeded["stale"].slug]["seconds_since_last_event"] == pytest.approx(3 * 3600, abs=1)
    assert freshness[seeded["source"].slug]["sla_breached"] == 0

    assert seeded["link"].status == IdentityLink.PENDING_REVIEW
    assert figures["identity"]["review_backlog"]["pending_review"] == 1
    assert figures["identity"]["active_profiles"] >= 1
    assert figures["schema_drift"]["seen_24h"] == 1
    (hook,) = [row for row in figures["activations"]["destinations"] if row["destination"] == "hook"]
    assert (hook["planned"], hook["applied"], hook["reconciliation_delta"]) == (10, 8, 0.2)
    assert figures["consent_propagation"]["open_failures"] == 0
    assert figures["deletion"]["overdue"] == 0
    assert figures["worker"]["queue_depth"] >= 0


def test_latency_percentiles_are_interpolated(send, canonical_source):
    now = timezone.now()
    for seconds in (1, 2, 3, 4, 5):
        event = send()
        received = now - timedelta(minutes=30)
        RawEvent.objects.filter(pk=event.pk).update(
            received_at=received, status=RawEvent.PROCESSED, processed_at=received + timedelta(seconds=seconds)
        )
    latency = collect_figures(now=now)["ingestion"]["latency"]
    assert latency == {"count": 5, "p50_seconds": 3.0, "p95_seconds": 4.8}


def test_prometheus_text(seeded):
    metrics = parse_prometheus(prometheus_text(collect_figures(now=seeded["now"])))
    stale = seeded["stale"].slug
    assert metrics["cdp_source_freshness_sla_breached"]["samples"][(("source", stale),)] == 1
    assert metrics["cdp_ingestion_raw_events"]["samples"][(("status", "quarantined"),)] == 1
    assert metrics["cdp_ingestion_pending_raw_events"]["samples"][()] == 1
    assert metrics["cdp_identity_review_backlog"]["samples"][(("status", "pending_review"),)] == 1
    assert metrics["cdp_sync_reconciliation_delta_ratio"]["samples"][(("destination", "hook"),)] == 0.2
    assert metrics["cdp_schema_drift_seen_24h"]["samples"][()] == 1
    assert set(metrics["cdp_ingestion_latency_seconds"]["samples"]) == {(("quantile", "0.5"),), (("quantile", "0.95"),)}


def test_label_values_are_escaped():
    figures = collect_figures()
    figures["freshness"] = [{"source": 'a\\b"c\nd', "seconds_since_last_event": 1.5, "sla_breached": 0}]
    text = prometheus_text(figures)
    assert 'cdp_source_freshness_seconds{source="a\\\\b\\"c\\nd"} 1.5\n' in text
    metrics = parse_prometheus(text)
    assert metrics["cdp_source_freshness_seconds"]["samples"] == {(("source", 'a\\b"c\nd'),): 1.5}


def test_metrics_endpoint_auth_and_content_type(api, client, make_user, seeded):
    assert client.get("/metrics").status_code == 401
    assert api("marketer").get("/metrics").status_code == 403
    response = api("integration_engineer").get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    metrics = parse_prometheus(response.content.decode())
    assert metrics["cdp_identity_review_backlog"]["samples"][(("status", "pending_review"),)] == 1
    client.force_login(make_user("integration_engineer"))
    assert client.get("/metrics").status_code == 200


def test_operations_api(api, client, seeded):
    assert client.get("/api/v1/operations/metrics/").status_code == 401
    assert api("guest_services").get("/api/v1/operations/metrics/").status_code == 403
    response = api("integration_engineer").get("/api/v1/operations/metrics/")
    assert response.status_code == 200
    body = response.json()
    assert body["identity"]["review_backlog"]["pending_review"] == 1
    assert body["ingestion"]["pending"] == 1


def test_schema_generates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


# -- added with the health dashboard: quarantine rate, match rate per source, deletion propagation, alerts --


def _deletion_step(now, outcome, sent, applied, *, days_ago=1, kind="deletion"):
    request = PrivacyRequest.objects.create(
        kind=kind, regulation="gdpr", received_at=now - timedelta(days=days_ago), due_at=now + timedelta(days=30)
    )
    started = now - timedelta(days=days_ago)
    return PrivacyRequestStep.objects.create(
        request=request,
        name="destinations",
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        outcome=outcome,
        detail={"outcomes": [], "sent": sent, "applied": applied, "failed": sent - applied},
    )


def test_deletion_propagation_success(db):
    now = timezone.now()
    assert collect_figures(now=now)["deletion"]["propagation"]["success_ratio"] is None  # nothing ran yet
    _deletion_step(now, PrivacyRequestStep.OK, 3, 3)
    _deletion_step(now, PrivacyRequestStep.OK, 2, 2)
    _deletion_step(now, PrivacyRequestStep.FAILED, 4, 1)
    _deletion_step(now, PrivacyRequestStep.FAILED, 9, 0, days_ago=40)  # outside the 30 days
    propagation = collect_figures(now=now)["deletion"]["propagation"]
    assert propagation == {
        "window_days": 30,
        "steps_succeeded": 2,
        "steps_failed": 1,
        "success_ratio": 0.6667,
        "operations_sent": 9,
        "operations_applied": 6,
    }
    metrics = parse_prometheus(prometheus_text(collect_figures(now=now)))
    assert metrics["cdp_deletion_propagation_success_ratio"]["samples"] == {(): 0.6667}
    assert metrics["cdp_deletion_propagation_steps"]["samples"] == {
        (("outcome", "succeeded"),): 2,
        (("outcome", "failed"),): 1,
    }


def test_quarantine_ratio_match_rates_and_open_alerts(seeded):
    from cdp_site.alerts import alert_rule_save
    from cdp_site.operations_models import Alert
    from identity.metrics import identity_metrics_snapshot

    identity_metrics_snapshot()
    rule = alert_rule_save(
        actor="test", name='Pending "now"', metric="ingestion_pending", comparison="above", threshold=0, consecutive=1
    )
    Alert.objects.create(rule=rule, value_at_raise=1, last_value=1, raised_at=seeded["now"])
    figures = collect_figures(now=seeded["now"])
    hour = figures["ingestion"]["last_hour"]
    assert hour["quarantined"] == 1 and hour["failed"] == 0
    assert hour["quarantine_ratio"] == round(1 / hour["received"], 4)
    rates = figures["identity"]["source_match_rates"]
    assert set(rates) == {seeded["source"].slug, seeded["stale"].slug}
    assert figures["identity"]["coverage_rate"] == figures["identity"]["match_rate"]
    assert figures["alerts"]["open"] == 1
    metrics = parse_prometheus(prometheus_text(figures))
    assert metrics["cdp_ingestion_quarantine_ratio"]["samples"][()] == hour["quarantine_ratio"]
    # The stale source has no profile: no rate (None), so no sample.
    assert rates[seeded["stale"].slug] is None
    assert metrics["cdp_identity_source_match_rate_ratio"]["samples"] == {
        (("source", seeded["source"].slug),): rates[seeded["source"].slug]
    }
    assert metrics["cdp_alerts_open"]["samples"] == {(): 1}
    assert metrics["cdp_alert_open"]["samples"] == {
        (("rule_id", str(rule.pk)), ("rule", 'Pending "now"'), ("metric", "ingestion_pending"), ("label", "")): 1
    }
