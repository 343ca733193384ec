"""Real-time triggers, fired by the processing worker's after-commit hook against a live receiver."""

from datetime import UTC, datetime, timedelta

import pytest

from activations.local_destination import LocalDestination, Reply
from activations.models import Trigger, TriggerSend
from activations.triggers import TriggerInvalid, quiet_until, trigger_latency, trigger_save, triggers_sweep
from tests.activations.conftest import bodies

pytestmark = pytest.mark.django_db

TEMPLATE = {"type": "order.thanks", "to": "{email}", "text": "Thanks {first_name}, you are on {plan}"}


def event_trigger(destination, **overrides):
    values = {
        "name": "Big order",
        "slug": f"big-order-{destination.pk}",
        "kind": Trigger.EVENT,
        "destination": destination,
        "event_type": "order.completed",
        "where": [{"property": "total", "op": "gt", "value": 50}],
        "template": TEMPLATE,
        "cap_count": 1,
        "cap_window_hours": 24,
    }
    values.update(overrides)
    return trigger_save(**values)


def order(ingest_live, email, total, **extra):
    return ingest_live(
        email=email,
        event_type="order.completed",
        properties={"order_id": f"o-{email}-{total}", "total": total, "currency": "EUR"},
        **extra,
    )


def test_event_trigger_sends_once_with_profile_fields_and_records_latency(ingest, ingest_live, webhook_destination):
    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        trigger = event_trigger(webhook_destination(server.url))
        order(ingest_live, "ana@example.com", 20)  # filtered out: total not over 50
        assert server.requests == []
        order(ingest_live, "ana@example.com", 80)
        [body] = bodies(server)
        assert body["type"] == "order.thanks"
        assert body["data"] == {"to": "ana@example.com", "text": "Thanks Ana, you are on gold"}
        send = TriggerSend.objects.get(trigger=trigger)
        assert send.status == "sent" and send.idempotency_key.startswith("event:")
        assert server.accepted()[0].headers["webhook-id"] == f"trigger-{trigger.pk}-{send.idempotency_key}"
        assert 0 <= send.latency_ms < 5000
        assert trigger_latency(trigger)["count"] == 1
        # The sweep sees the same event: nothing new.
        assert triggers_sweep() == 0
        assert len(server.requests) == 1


def test_frequency_cap_per_person_and_channel(ingest, ingest_live, webhook_destination):
    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        trigger = event_trigger(webhook_destination(server.url))
        order(ingest_live, "ana@example.com", 80)
        order(ingest_live, "ana@example.com", 90)
        assert len(server.requests) == 1
        statuses = sorted(TriggerSend.objects.filter(trigger=trigger).values_list("status", "skip_reason"))
        assert statuses == [("sent", ""), ("skipped", "frequency_cap")]


def test_consent_tombstone_and_missing_fields_are_checked_at_send_time(ingest, ingest_live, webhook_destination):
    from consent.tombstones import tombstone_write
    from profiles.models import RawEvent

    ingest(email="no@example.com", traits={"plan": "gold", "first_name": "N"}, consent={"email_marketing": False})
    ingest(
        email="gone@example.com",
        customer="u-gone",
        traits={"plan": "gold", "first_name": "G"},
        consent={"email_marketing": True},
    )
    ingest(email="anon@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    # A deletion request tombstoned the email; an order arrives under the person's other id.
    tombstone_write(identifier_type="email", normalised_value="gone@example.com", reason="deletion request")
    with LocalDestination() as server:
        trigger = event_trigger(webhook_destination(server.url), cap_window_hours=0)
        for email in ("no@example.com", "anon@example.com"):
            order(ingest_live, email, 99)
        properties = {"order_id": "o-gone", "total": 99, "currency": "EUR"}
        ingest_live(customer="u-gone", event_type="order.completed", properties=properties)
        assert server.requests == []
        reasons = dict(TriggerSend.objects.filter(trigger=trigger).values_list("skip_reason", "error"))
        assert set(reasons) == {"consent", "tombstone", "missing_field"}
        assert "first_name" in reasons["missing_field"]
        # An event naming the tombstoned email itself is dropped at ingest: no event, no send.
        with pytest.raises(AssertionError, match="dropped"):
            order(ingest_live, "gone@example.com", 120)
        assert RawEvent.objects.filter(status="dropped").count() == 1
        assert TriggerSend.objects.filter(trigger=trigger).count() == 3


def test_segment_entry_fires_once_and_holdout_is_respected(ingest, ingest_live, audience, webhook_destination):
    segment = audience({"all": [{"trait": "plan", "op": "eq", "value": "platinum"}]}, holdout_percent=0)
    with LocalDestination() as server:
        trigger = trigger_save(
            name="Welcome to platinum",
            slug="platinum-welcome",
            kind=Trigger.SEGMENT_ENTRY,
            destination=webhook_destination(server.url),
            segment=segment,
            template={"type": "welcome", "to": "{email}"},
            cap_window_hours=0,
        )
        ingest_live(email="ana@example.com", traits={"plan": "platinum"}, consent={"email_marketing": True})
        assert [body["data"] for body in bodies(server)] == [{"to": "ana@example.com"}]
        ingest_live(email="ana@example.com", traits={"first_name": "Ana"})  # still a member: no new entry
        assert len(server.requests) == 1
        send = TriggerSend.objects.get(trigger=trigger)
        assert send.membership_id is not None and send.latency_ms is not None
        # Held-out members get nothing.
        segment.holdout_percent = 100
        segment.save(update_fields=["holdout_percent"])
        ingest_live(email="ben@example.com", traits={"plan": "platinum"}, consent={"email_marketing": True})
        assert len(server.requests) == 1
        assert TriggerSend.objects.filter(trigger=trigger, skip_reason="holdout").count() == 1


def test_segment_exit_trigger(ingest, ingest_live, audience, webhook_destination):
    ingest(email="ana@example.com", traits={"plan": "gold"}, consent={"email_marketing": True})
    segment = audience()
    with LocalDestination() as server:
        trigger_save(
            name="Downgraded",
            slug="downgraded",
            kind=Trigger.SEGMENT_EXIT,
            destination=webhook_destination(server.url),
            segment=segment,
            template={"type": "downgraded", "to": "{email}", "plan": "{plan}"},
        )
        ingest_live(email="ana@example.com", traits={"plan": "silver"})
        assert [body["data"] for body in bodies(server)] == [{"to": "ana@example.com", "plan": "silver"}]


def test_failed_sends_are_retried_by_the_tick(ingest, ingest_live, webhook_destination):
    from activations.triggers import trigger_sends_retry_due

    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    answers = iter([Reply(503, {"error": "busy"}), Reply(200, {})])
    with LocalDestination(lambda received: next(answers)) as server:
        trigger = event_trigger(webhook_destination(server.url))
        order(ingest_live, "ana@example.com", 80)
        send = TriggerSend.objects.get(trigger=trigger)
        assert (send.status, send.attempts) == ("pending", 1)
        TriggerSend.objects.filter(pk=send.pk).update(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        assert trigger_sends_retry_due() == 1
        send.refresh_from_db()
        assert (send.status, send.attempts) == ("sent", 2)
        ids = {request.headers["webhook-id"] for request in server.requests}
        assert len(ids) == 1  # the retry carries the same idempotency key


def test_quiet_hours_in_the_profiles_time_zone():
    trigger = Trigger(quiet_start_hour=21, quiet_end_hour=8, default_timezone="UTC")

    class Person:
        traits = {"timezone": "America/New_York"}

    # 03:00 UTC is 22:00 or 23:00 in New York: quiet until 08:00 local.
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    until = quiet_until(trigger, Person(), now)
    assert until == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    Person.traits = {}
    assert quiet_until(trigger, Person(), now) is not None  # 03:00 UTC is quiet in UTC too
    assert quiet_until(trigger, Person(), datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) is None


def test_templates_may_only_use_contract_fields(webhook_destination):
    destination = webhook_destination("http://127.0.0.1:9")
    with pytest.raises(TriggerInvalid) as invalid:
        event_trigger(destination, template={"type": "x", "text": "Hi {password}"})
    assert "outside" in str(invalid.value.errors["template"])


def test_sms_through_twilio_on_a_cancellation(ingest, ingest_live):
    from urllib.parse import parse_qs

    from activations.destinations import destination_save
    from tests.activations.vendors import twilio_responder

    ingest(phone="+14155550123", traits={"first_name": "Ana"}, consent={"sms_marketing": True})
    with LocalDestination(twilio_responder(account_sid="AC123", auth_token="tok")) as server:
        twilio = destination_save(
            secrets={"auth_token": "tok"},
            name="Twilio",
            slug="twilio",
            kind="twilio",
            base_url=server.url,
            settings={"account_sid": "AC123", "from_number": "+14155550100"},
            fields=[
                {"name": "phone", "source": "identifier:phone"},
                {"name": "first_name", "source": "trait:first_name"},
            ],
            idempotency_key="phone",
            operations=["message"],
            consent_purpose="sms_marketing",
            pii_mode="cleartext",
            rate_limit_per_second=100,
            batch_size=1,
        )
        trigger_save(
            name="Cancellation save",
            slug="cancellation-sms",
            kind=Trigger.EVENT,
            destination=twilio,
            event_type="booking.cancelled",
            template={"To": "{phone}", "Body": "Sorry to see you go, {first_name}. Rebook with 20% off."},
        )
        ingest_live(phone="+14155550123", event_type="booking.cancelled", properties={"booking_id": "b1"})
        [request] = server.accepted()
        assert request.path == "/2010-04-01/Accounts/AC123/Messages.json"
        form = parse_qs(request.body.decode())
        assert form["To"] == ["+14155550123"] and form["From"] == ["+14155550100"]
        assert form["Body"] == ["Sorry to see you go, Ana. Rebook with 20% off."]
        send = TriggerSend.objects.get()
        assert send.status == "sent" and send.channel == "sms" and "SM" in send.response


def test_old_events_never_fire(ingest, ingest_live, webhook_destination):
    """A backfill of last year's orders must not message anyone."""
    from django.utils import timezone as tz

    ingest(email="ana@example.com", traits={"plan": "gold", "first_name": "Ana"}, consent={"email_marketing": True})
    with LocalDestination() as server:
        trigger = event_trigger(webhook_destination(server.url))
        ingest_live(
            email="ana@example.com",
            event_type="order.completed",
            properties={"order_id": "o-old", "total": 99, "currency": "EUR"},
            at=(tz.now() - timedelta(days=200)).isoformat(),
        )
        assert triggers_sweep() == 0
        assert server.requests == [] and not TriggerSend.objects.filter(trigger=trigger).exists()
