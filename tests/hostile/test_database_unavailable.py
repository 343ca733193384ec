"""Ingestion while the database is unreachable: 503 with Retry-After and a JSON reason, never 500;
after it comes back, 200; and every event acknowledged with 2xx is stored exactly once.

The unit tests force OperationalError/InterfaceError on both databases. The PostgreSQL test routes
Django's connections through a TCP proxy the test cuts and restores (the machine's PostgreSQL is
shared, so it is never stopped)."""

import json
import socket
import threading
import time

import httpx
import pytest
from django.db import InterfaceError, OperationalError, connection, connections

from profiles.models import RawEvent
from profiles.sources import source_create
from tests.profiles.webhooks.senders import standard_headers

pytestmark = pytest.mark.django_db

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _raise(error_class):
    def fail(*args, **kwargs):
        raise error_class("could not connect to server: Connection refused")

    return fail


def assert_503(response):
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = response.json()
    assert body["code"] == "database_unavailable" and "retry" in body["message"]


@pytest.mark.parametrize("error_class", [OperationalError, InterfaceError])
@pytest.mark.parametrize("target", ["raw_events_store", "source_for_write_key"])
def test_tracking_answers_503_when_the_database_is_down(client, tracking_source, monkeypatch, error_class, target):
    _, write_key = tracking_source
    monkeypatch.setattr(f"profiles.tracking.views.{target}", _raise(error_class))
    body = json.dumps({"userId": "u-1", "event": "Class Booked", "messageId": "m-down"})
    response = client.post("/v1/track", data=body, content_type="application/json", HTTP_X_WRITE_KEY=write_key)
    assert_503(response)
    monkeypatch.undo()
    response = client.post("/v1/track", data=body, content_type="application/json", HTTP_X_WRITE_KEY=write_key)
    assert response.status_code == 200
    assert list(RawEvent.objects.values_list("external_id", flat=True)) == ["m-down"]


@pytest.mark.parametrize("error_class", [OperationalError, InterfaceError])
@pytest.mark.parametrize("target", ["raw_events_store", "signing_secrets"])
def test_webhook_answers_503_when_the_database_is_down(client, monkeypatch, error_class, target):
    source_create(name="Booking", kind="standard_webhook", slug="booking", signing_secret=STANDARD_SECRET)
    body = json.dumps({"type": "booking.created", "data": {}}).encode()
    headers = standard_headers(body, STANDARD_SECRET, message_id="msg_down")
    monkeypatch.setattr(f"profiles.webhooks.views.{target}", _raise(error_class))
    assert_503(client.post("/webhooks/booking/", data=body, content_type="application/json", **headers))
    monkeypatch.undo()
    assert client.post("/webhooks/booking/", data=body, content_type="application/json", **headers).status_code == 200
    assert RawEvent.objects.get().external_id == "msg_down"


class CuttableProxy:
    """Forwards a local port to PostgreSQL. cut() drops every open connection and refuses new ones
    (what clients see when the server stops); restore() lets connections through again."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.is_cut = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.open_sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open_sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, destination):
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, destination)

    def _drop(self, *sockets):
        for sock in sockets:
            with self.lock:
                self.open_sockets.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut(self):
        self.is_cut.set()
        with self.lock:
            sockets = list(self.open_sockets)
        self._drop(*sockets)

    def restore(self):
        self.is_cut.clear()

    def close(self):
        self.closed.set()
        self.cut()
        self.listener.close()


@pytest.fixture
def database_through_proxy(monkeypatch):
    """Every new Django connection (the live server opens one per request) goes through the proxy.
    The settings dict is shared by all threads' connections, so changing it in place reroutes them."""
    settings_dict = connection.settings_dict
    proxy = CuttableProxy(settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432))
    original = settings_dict["HOST"], settings_dict["PORT"]
    # Processing is the workers' business (and the sweeper's); keep the request path alone under test.
    monkeypatch.setattr("profiles.ingest.enqueue_processing", lambda: None)
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(proxy.port)
    yield proxy
    settings_dict["HOST"], settings_dict["PORT"] = original
    proxy.close()
    connections.close_all()


def _deliver(http: httpx.Client, outcomes: list, deadline: float, send) -> bool:
    """Send one event until it is acknowledged with 2xx (as an SDK or a webhook sender retries)."""
    while time.monotonic() < deadline:
        try:
            response = send(http)
        except httpx.HTTPError as error:
            outcomes.append(("transport", str(error)))
            time.sleep(0.05)
            continue
        outcomes.append((response.status_code, response.headers.get("Retry-After"), response.text[:200]))
        if response.status_code < 300:
            return True
        # Honour Retry-After in spirit; the real 5 s would make the test slow.
        time.sleep(0.05)
    return False


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the TCP proxy fault test needs PostgreSQL over TCP")
# serialized_rollback, like the suite's other live tests: a plain transactional test re-creates content
# types on teardown, and a later serialized_rollback test on the same worker would collide with them.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgres_cut_during_ingestion_answers_503_then_200_and_loses_nothing(
    live_server, database_through_proxy, fresh_rate_and_key_caches
):
    proxy = database_through_proxy
    tracking, credentials = source_create(name="SDK under fault", kind="tracking", slug="sdk-fault")
    webhook, _ = source_create(
        name="Booking under fault", kind="standard_webhook", slug="booking-fault", signing_secret=STANDARD_SECRET
    )
    per_sender, deadline = 40, time.monotonic() + 60
    outcomes, acknowledged = {"tracking": [], "webhook": []}, {"tracking": set(), "webhook": set()}
    progress = threading.Semaphore(0)

    def tracking_sender():
        with httpx.Client(base_url=live_server.url, timeout=10, auth=(credentials.write_key, "")) as http:
            for index in range(per_sender):
                message_id = f"m-{index}"
                body = {"batch": [{"type": "track", "userId": "u-1", "event": "Fault", "messageId": message_id}]}
                if _deliver(http, outcomes["tracking"], deadline, lambda h, b=body: h.post("/v1/batch", json=b)):
                    acknowledged["tracking"].add(message_id)
                progress.release()

    def webhook_sender():
        with httpx.Client(base_url=live_server.url, timeout=10) as http:
            for index in range(per_sender):
                message_id = f"msg_fault_{index}"
                body = json.dumps({"type": "booking.created", "data": {"n": index}}).encode()
                headers = {
                    name.removeprefix("HTTP_").replace("_", "-").lower(): value
                    for name, value in standard_headers(body, STANDARD_SECRET, message_id=message_id).items()
                }
                headers["content-type"] = "application/json"

                def send(h, body=body, headers=headers):
                    return h.post("/webhooks/booking-fault/", content=body, headers=headers)

                if _deliver(http, outcomes["webhook"], deadline, send):
                    acknowledged["webhook"].add(message_id)
                progress.release()

    senders = [threading.Thread(target=tracking_sender), threading.Thread(target=webhook_sender)]
    for sender in senders:
        sender.start()
    for _ in range(10):  # let some deliveries through first
        assert progress.acquire(timeout=30)
    proxy.cut()
    time.sleep(2)
    proxy.restore()
    for sender in senders:
        sender.join(timeout=70)

    for kind, source in (("tracking", tracking), ("webhook", webhook)):
        statuses = [outcome[0] for outcome in outcomes[kind]]
        assert len(acknowledged[kind]) == per_sender, f"{kind}: not every event was acknowledged: {statuses}"
        assert 503 in statuses, f"{kind}: the cut was never seen: {statuses}"
        assert not [s for s in statuses if s not in (200, 503)], f"{kind}: {outcomes[kind]}"
        assert all(o[1] == "5" and "database_unavailable" in o[2] for o in outcomes[kind] if o[0] == 503)
        assert statuses[-1] == 200
        stored = list(RawEvent.objects.filter(source=source).values_list("external_id", flat=True))
        assert sorted(stored) == sorted(acknowledged[kind]), f"{kind}: stored {len(stored)} of {per_sender}"
