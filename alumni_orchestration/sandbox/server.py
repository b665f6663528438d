"""`alumni sandbox`: one local HTTP server standing in for the providers of sandbox/providers/.

Each provider answers under its own prefix (/sendgrid/v3, /eventbrite/v3, /helloasso/v5 and
/helloasso/oauth2/token) with its auth, pagination and error envelopes. This layer dispatches by prefix
to the providers' route tables, injects faults, adds rate-limit headers, and delivers the recipients'
reactions to sent mail to the webhook URL as signed batches.

Control endpoints (the sandbox only): GET /sandbox/status, POST /sandbox/clock {"now"|"advance"},
POST /sandbox/replay {"from", "to"}.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from alumni_orchestration.sandbox.pagination import BadPage
from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.providers.eventbrite import EventbriteProvider
from alumni_orchestration.sandbox.providers.helloasso import HelloAssoProvider
from alumni_orchestration.sandbox.providers.sendgrid import SendGridProvider
from alumni_orchestration.sandbox.state import ApiError, SharedState
from alumni_orchestration.webhook import signing

log = logging.getLogger("alumni.sandbox")

# The providers the sandbox serves: a new one is a module of sandbox/providers/ and a line here.
PROVIDERS: tuple[type[Provider], ...] = (SendGridProvider, EventbriteProvider, HelloAssoProvider)
RATE_LIMIT = 600  # per minute, reported in X-RateLimit-* headers


def _control_bad_json() -> ApiError:
    return ApiError(400, {"errors": [{"message": "Bad Request: the body is not valid JSON", "field": None,
                                      "help": None}], "id": uuid.uuid4().hex})


class Sandbox:
    """The providers and the state they share, independent of HTTP. `options` go to the providers
    whose constructors name them (sendgrid_keys, eventbrite_token, helloasso_client, ...)."""

    def __init__(self, data_dir: Path, *, providers: tuple[type[Provider], ...] = PROVIDERS, **options: Any) -> None:
        self.shared = SharedState(Path(data_dir))
        accepted = {cls: set(inspect.signature(cls).parameters) - {"shared"} for cls in providers}
        unknown = set(options).difference(*accepted.values())
        if unknown:
            raise TypeError(f"no sandbox provider takes {sorted(unknown)}")
        self.providers: dict[str, Provider] = {
            cls.name: cls(self.shared, **{k: v for k, v in options.items() if k in accepted[cls]}) for cls in providers}
        self.faults_injected = 0  # 429s and 500s answered on purpose, so tests can tell faults really happened

    def tick(self) -> None:
        for provider in self.providers.values():
            provider.tick()

    def status(self) -> dict[str, Any]:
        self.tick()
        with self.shared.lock:
            status: dict[str, Any] = {"now": self.shared.now()}
            for provider in self.providers.values():
                status.update(provider.status())
            return status


def make_handler(sandbox: Sandbox, fault_rate: float, slow_rate: float, rng: random.Random):
    providers = list(sandbox.providers.values())
    rate_limited_prefixes = tuple(p.prefix for p in providers if p.rate_limit_headers)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
        # delayed ACK hold each kept-alive response about 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log.debug(format, *args)

        # -- plumbing --
        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            reset = int(time.time() // 60 + 1) * 60
            if rate_limited_prefixes and self.path.startswith(rate_limited_prefixes):
                self.send_header("X-RateLimit-Limit", str(RATE_LIMIT))
                self.send_header("X-RateLimit-Remaining", str(RATE_LIMIT - 1))
                self.send_header("X-RateLimit-Reset", str(reset))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _fault(self, provider: Provider) -> None:
            """Injected 429s and 500s, in the provider's own error shape."""
            if fault_rate <= 0 or rng.random() >= fault_rate:
                if slow_rate > 0 and rng.random() < slow_rate:
                    time.sleep(rng.uniform(0.3, 1.2))
                return
            reset = str(int(time.time()) + 1)
            sandbox.faults_injected += 1
            if rng.random() < 0.5:
                raise provider.rate_limited(reset)
            raise provider.server_error()

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
            try:
                self._send(*self._answer(method, path, query))
            except ApiError as exc:
                self._send(exc.status, exc.body, exc.headers)

        def _answer(self, method: str, path: str, query: dict[str, list[str]]) -> Reply:
            if path.startswith("/sandbox"):
                return self._control(Request(method, path, query, self.headers, self._body, _control_bad_json))
            for provider in providers:
                if not path.startswith(provider.prefix):
                    continue
                request = Request(method, path, query, self.headers, self._body, provider.bad_json)
                reply = provider.answer(provider.PUBLIC_ROUTES, request)
                if reply is not None:
                    return reply
                if path.startswith(provider.api_root):
                    return self._api(provider, request)
            return 404, {"errors": [{"message": "not found", "field": None}]}

        def _api(self, provider: Provider, request: Request) -> Reply:
            """A call to the provider's API: its auth, then maybe a fault, then its route."""
            provider.authenticate(request)
            self._fault(provider)
            request.path = request.path[len(provider.api_root):]
            try:
                reply = provider.answer(provider.ROUTES, request)
            except BadPage as exc:
                raise provider.bad_page(str(exc)) from exc
            if reply is None:
                raise provider.not_found()
            return reply

        def _control(self, request: Request) -> Reply:
            body = request.json() if request.method == "POST" else None
            if request.path == "/sandbox/status":
                return 200, sandbox.status()
            if request.path == "/sandbox/clock" and request.method == "POST":
                if "now" in body:
                    sandbox.shared.set_clock(float(body["now"]))
                else:
                    sandbox.shared.advance_clock(float(body.get("advance", 0)))
                sandbox.tick()
                return 200, {"now": sandbox.shared.now()}
            for provider in providers:
                reply = provider.answer(provider.CONTROL_ROUTES, request)
                if reply is not None:
                    return reply
            return 404, {"message": "unknown sandbox control"}

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

    return Handler


class SandboxServer:
    """The sandbox on a background thread; ephemeral port by default. Also delivers the webhook."""

    def __init__(self, data_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0, webhook_url: str | None = None,
                 fault_rate: float = 0.0, slow_rate: float | None = None, seed: int = 0, tick_seconds: float = 0.2,
                 **sandbox_options: Any) -> None:
        self.sandbox = Sandbox(Path(data_dir), **sandbox_options)
        slow = fault_rate / 2 if slow_rate is None else slow_rate
        self.server = ThreadingHTTPServer((host, port), make_handler(self.sandbox, fault_rate, slow, random.Random(seed)))
        self.server.daemon_threads = True
        self.webhook_url = webhook_url
        self.tick_seconds = tick_seconds
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._deliver_loop, daemon=True)]

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _deliver_loop(self) -> None:
        """SendGrid's Event Webhook: its queued events, posted in signed batches."""
        delay = self.tick_seconds
        session = requests.Session()
        webhook = next((p for p in self.sandbox.providers.values() if isinstance(p, SendGridProvider)), None)
        while not self._stop.wait(delay):
            self.sandbox.tick()
            if not self.webhook_url or webhook is None:
                continue
            batch = webhook.take_webhook_batch()
            if not batch:
                delay = self.tick_seconds
                continue
            body = json.dumps(batch).encode()
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", signing.TIMESTAMP_HEADER: timestamp,
                       signing.SIGNATURE_HEADER: signing.sign(webhook.key, timestamp, body)}
            try:
                ok = session.post(self.webhook_url, data=body, headers=headers, timeout=10).status_code < 300
            except requests.RequestException:
                ok = False
            if ok:
                webhook.ack_webhook_batch(len(batch))
                delay = 0.0
            else:  # as SendGrid does: keep the batch and retry later, backing off
                delay = min(max(delay * 2, 0.5), 10.0)

    def __enter__(self) -> SandboxServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._threads[1].join(timeout=5)


def serve_forever(data_dir: Path, port: int, host: str, webhook_url: str | None, fault_rate: float) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with SandboxServer(data_dir, host=host, port=port, webhook_url=webhook_url, fault_rate=fault_rate,
                       seed=int(time.time())) as server:
        log.info("API sandbox on %s (SendGrid /sendgrid/v3, Eventbrite /eventbrite/v3, HelloAsso /helloasso/v5)",
                 server.base_url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
