"""Provider bodies decoded by `request_json` (orjson, with the standard decoder behind it) exactly as
`requests`' own `response.json()` decodes them, over a real socket."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from alumni_orchestration.ingest.http import request_json

BODIES = {
    "/plain": (b'{"data": [{"id": 1, "amount": {"total": 1500}, "name": "Soir\\u00e9e", "ratio": 0.5}], '
               b'"pagination": {"continuationToken": "abc", "pageIndex": 1}}', "application/json"),
    "/accents": ('{"name": "Dîner de gala — été", "tags": ["é", null, true, false]}'.encode(), "application/json"),
    "/nan": (b'{"score": NaN, "n": 1}', "application/json"),
    "/huge": (b'{"id": 123456789012345678901234567890}', "application/json"),
    "/latin1": ('{"city": "Orléans"}'.encode("latin-1"), "application/json; charset=ISO-8859-1"),
    "/duplicate-keys": (b'{"a": 1, "a": 2}', "application/json"),
    "/list": (b'[1, 2.0, "3", {"x": []}]', "application/json"),
    "/blank": (b"  \n", "application/json"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, content_type = BODIES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("path", sorted(BODIES))
def test_request_json_decodes_as_requests_does(base_url: str, path: str) -> None:
    with requests.Session() as session:
        got = request_json(session, "test", "GET", base_url + path)
        response = session.get(base_url + path, timeout=10)
    expected = response.json() if response.content.strip() else None
    assert repr(got) == repr(expected)  # repr: NaN equals NaN, and 2.0 is not 2
