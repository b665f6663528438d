"""A local HTTP server that answers fixed JSON documents: the providers' documented examples, served over a
real socket so the real clients and assets read them as they would read the provider.

Routes map (method, path) to a function of (query, body) giving (status, json body). Paths are matched
exactly, without the query string.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
Handler = Callable[[dict[str, list[str]], bytes], tuple[int, Any]]


def fixture(provider: str, name: str) -> Any:
    """One documented example, as parsed JSON."""
    return json.loads((FIXTURES / provider / name).read_text(encoding="utf-8"))


def answer(body: Any, status: int = 200) -> Handler:
    return lambda query, raw: (status, body)


class FixtureServer:
    """`with FixtureServer(routes) as server:` then `server.url + path`; `server.requests` logs what came."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((method, parts.path, query))
                route = outer.routes.get((method, parts.path))
                status, body = route(query, raw) if route else (404, {"error": "NOT_FOUND"})
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
