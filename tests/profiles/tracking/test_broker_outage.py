"""A broker that cannot take the nudge after the events are stored must not turn a stored event into
a 500: the sender would retry for nothing, and the sweeper claims pending events anyway."""

import base64
import json
import logging
import math

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from profiles import ingest
from profiles.models import RawEvent
from profiles.sources import source_create

pytestmark = pytest.mark.django_db


def test_a_broker_outage_after_storing_still_answers_200(
    client, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("django_q.tasks.async_task", broker_down)
    monkeypatch.setattr(ingest, "_last_nudge", -math.inf)
    _source, credentials = source_create(name="Web SDK", kind="tracking")
    auth = "Basic " + base64.b64encode(f"{credentials.write_key}:".encode()).decode()
    body = {"type": "track", "event": "Class Booked", "userId": "u1", "messageId": "m-1"}

    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/v1/track", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=auth
        )

    assert response.status_code == 200, response.content
    assert len(callbacks) == 1  # the nudge was attempted, after the commit
    assert RawEvent.objects.get(external_id="m-1").status == RawEvent.PENDING  # for the sweeper
    assert "processing_nudge_failed error=ConnectionError" in caplog.text
