"""A local HTTP server standing in for a destination: records every request, answers through a
pluggable responder, and can enforce a rate limit with 429 and Retry-After like the real APIs.
The tests and `benchmark_activations` point destinations at it; nothing in the running service uses it."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: object = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class LocalDestination:
    """`with LocalDestination() as server:` ... `server.url`, `server.requests`.

    `responder(received) -> Reply` decides each answer (default: 200 {}). `rate_limit` (requests
    per `rate_window` seconds) answers 429 with Retry-After once exceeded, without calling the
    responder; `rate_limited` counts those answers.
    """

    def __init__(
        self, responder=None, *, rate_limit: int | None = None, rate_window: float = 1.0, retry_after: str = "1"
    ):
        self.responder = responder or (lambda received: Reply())
        self.requests: list[Received] = []
        self.rate_limit, self.rate_window, self.retry_after = rate_limit, rate_window, retry_after
        self.rate_limited = 0
        self._recent: deque = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Received]:
        """Requests answered with something other than a 429 from the rate limit."""
        with self._lock:
            return [r for r in self.requests if not getattr(r, "limited", False)]

    def _over_limit(self, now: float) -> bool:
        if self.rate_limit is None:
            return False
        while self._recent and now - self._recent[0] >= self.rate_window:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _handler(self):
        destination = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # answers in one segment: no 40 ms delayed-ACK stalls

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with destination._lock:
                    limited = destination._over_limit(received.at)
                    received.limited = limited
                    destination.requests.append(received)
                    if limited:
                        destination.rate_limited += 1
                if limited:
                    reply = Reply(429, {"message": "rate limited"}, {"Retry-After": destination.retry_after})
                else:
                    reply = destination.responder(received)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        return Handler
