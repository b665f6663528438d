"""`alumni webhook`: the SendGrid Event Webhook receiver.

It answers 2xx only once the batch is durably landed, so SendGrid (which retries for 24 hours
until it gets a 2xx) never loses an acknowledged batch, even if this process is killed right after.

- missing signature or timestamp headers: 401
- a signature that does not verify, or a timestamp older than 5 minutes (or 5 minutes ahead): 403
- a body larger than the limit: 413; a body that is not a JSON array: 400

On start, and every hour while it runs, it removes the temporary files a killed write left in the landing
folder (older than `STALE_TEMP_SECONDS`, so that a write in progress is never touched).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from alumni_orchestration.webhook.landing import Landing, batch_name, remove_stale_temp_files
from alumni_orchestration.webhook.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

log = logging.getLogger("alumni.webhook")
PARIS = ZoneInfo("Europe/Paris")
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_SKEW_SECONDS = 300
WEBHOOK_PATHS = ("/", "/sendgrid/events")
SWEEP_INTERVAL_SECONDS = 3600


def paris_day(unix_seconds: float) -> str:
    return dt.datetime.fromtimestamp(unix_seconds, PARIS).date().isoformat()


def make_handler(landing: Landing, public_key: str, max_body: int = MAX_BODY_BYTES):
    class WebhookHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
            log.debug("%s %s", self.address_string(), format % args)  # no bodies, no addresses

        def _answer(self, status: int, message: str) -> None:
            body = json.dumps({"status": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz":
                self._answer(HTTPStatus.OK, "ok")
            else:
                self._answer(HTTPStatus.NOT_FOUND, "not found")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] not in WEBHOOK_PATHS:
                self._answer(HTTPStatus.NOT_FOUND, "not found")
                return
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._answer(HTTPStatus.LENGTH_REQUIRED, "length required")
                return
            if length > max_body:
                self.close_connection = True
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                return
            raw = self.rfile.read(length)
            signature = self.headers.get(SIGNATURE_HEADER)
            timestamp = self.headers.get(TIMESTAMP_HEADER)
            if not signature or not timestamp:
                self._answer(HTTPStatus.UNAUTHORIZED, "missing signature")
                return
            try:
                skew = abs(time.time() - float(timestamp))
            except ValueError:
                skew = float("inf")
            if skew > MAX_SKEW_SECONDS:
                self._answer(HTTPStatus.FORBIDDEN, "stale timestamp")
                return
            if not verify(public_key, timestamp, raw, signature):
                self._answer(HTTPStatus.FORBIDDEN, "bad signature")
                return
            try:
                batch = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                batch = None
            if not isinstance(batch, list):
                self._answer(HTTPStatus.BAD_REQUEST, "body must be a JSON array")
                return
            received = time.time()
            try:
                landing.write_batch(paris_day(received), batch_name(raw, int(received * 1e9)), raw)
            except OSError:
                log.exception("could not land a batch")
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, "landing unavailable")  # SendGrid will retry
                return
            log.info("landed a batch of %d events", len(batch))
            self._answer(HTTPStatus.OK, "landed")

    return WebhookHandler


class WebhookReceiver:
    """The receiver in a background thread (ephemeral port by default), for tests and the demo."""

    def __init__(self, landing: str, public_key: str, host: str = "127.0.0.1", port: int = 0,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.server = ThreadingHTTPServer((host, port), make_handler(Landing(landing), public_key, max_body))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/sendgrid/events"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def sweep_temp_files(landing: Landing) -> int:
    """Remove stale temporary files; a sweep that fails is logged and never stops the receiver."""
    try:
        removed = remove_stale_temp_files(landing)
    except OSError:
        log.exception("could not sweep the landing folder's temporary files")
        return 0
    if removed:
        log.warning("removed %d stale temporary file(s) left by an interrupted write: %s", len(removed),
                    ", ".join(removed[:10]))
    return len(removed)


def _sweep_every(landing: Landing, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        sweep_temp_files(landing)


def serve_forever(port: int, host: str, landing: str, public_key: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    location = Landing(landing)
    sweep_temp_files(location)  # before the first request: a kill may have left one mid-write
    stop = threading.Event()
    threading.Thread(target=_sweep_every, args=(location, SWEEP_INTERVAL_SECONDS, stop), daemon=True).start()
    server = ThreadingHTTPServer((host, port), make_handler(location, public_key))
    server.daemon_threads = True
    log.info("SendGrid webhook receiver on http://%s:%d/sendgrid/events", host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
