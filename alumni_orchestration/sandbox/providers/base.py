"""What a provider of the sandbox is: a prefix, an auth check, error bodies in its own shape, route tables.

A route table maps (method, path pattern) to the name of a method of the provider taking the `Request`
and answering (status, body). Patterns are matched segment by segment; `{name}` matches one segment,
found in `request.params`. ROUTES are under `api_root` and need the provider's auth; PUBLIC_ROUTES
(full paths) need none; CONTROL_ROUTES are the sandbox's own endpoints (/sandbox/...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qs

from alumni_orchestration.sandbox.state import ApiError, SharedState

Reply = tuple[int, Any]  # (status, JSON body or None for an empty one)
RouteTable = dict[tuple[str, str], str]


class Request:
    """One request as a provider's route sees it: `path` is relative to the table's root."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
                 read_body: Callable[[], bytes], bad_json: Callable[[], ApiError]) -> None:
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.params: dict[str, str] = {}
        self._read_body, self._bad_json = read_body, bad_json
        self._body: bytes | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def body(self) -> bytes:
        if self._body is None:
            self._body = self._read_body()
        return self._body

    def json(self) -> Any:
        raw = self.body()
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError as exc:
            raise self._bad_json() from exc

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body().decode()).items()}

    def bearer(self) -> str | None:
        header = self.headers.get("Authorization")
        return header[7:] if header and header.startswith("Bearer ") else None


def _segments(path: str) -> list[str]:
    return path.split("/")


def match(table: RouteTable, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The first route of `table` for (method, path), and the values of its `{name}` segments."""
    segments = _segments(path)
    for (route_method, pattern), handler in table.items():
        wanted = _segments(pattern)
        if route_method != method or len(wanted) != len(segments):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(wanted, segments, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return handler, params
    return None


class Provider:
    """A simulated provider. Subclasses set the class attributes and implement `authenticate`,
    `not_found` and `bad_json`; they may answer `status()` counts and act on each `tick()`."""

    name: ClassVar[str]  # its key in listings and in `Sandbox.providers`
    prefix: ClassVar[str]  # every path it answers starts with it, e.g. "/sendgrid"
    api_root: ClassVar[str]  # its authenticated API, e.g. "/sendgrid/v3"
    rate_limit_headers: ClassVar[bool] = False  # X-RateLimit-* on every answer under `prefix`
    ROUTES: ClassVar[RouteTable] = {}
    PUBLIC_ROUTES: ClassVar[RouteTable] = {}
    CONTROL_ROUTES: ClassVar[RouteTable] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for table in (cls.ROUTES, cls.PUBLIC_ROUTES, cls.CONTROL_ROUTES):
            missing = [handler for handler in table.values() if not callable(getattr(cls, handler, None))]
            if missing:
                raise TypeError(f"{cls.__name__} routes to undefined handlers: {missing}")

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    def authenticate(self, request: Request) -> None:
        """Raise the provider's own 401/403 unless the request's credentials are good."""
        raise NotImplementedError

    def not_found(self) -> ApiError:
        raise NotImplementedError

    def bad_json(self) -> ApiError:
        raise NotImplementedError

    def bad_page(self, message: str) -> ApiError:
        """A continuation token that is not one of this query's."""
        return ApiError(400, {"error": "BAD_PAGE", "error_description": message, "status_code": 400})

    def rate_limited(self, reset: str) -> ApiError:
        """An injected 429."""
        return ApiError(429, {"errors": [{"field": None, "message": "too many requests"}]}, {"X-RateLimit-Reset": reset})

    def server_error(self) -> ApiError:
        """An injected 500."""
        return ApiError(500, {"errors": [{"field": None, "message": "internal error"}]})

    def status(self) -> dict[str, Any]:
        """Counts for GET /sandbox/status (called with the lock held)."""
        return {}

    def tick(self) -> None:
        """Let simulated time act (called on each status, clock change and delivery tick)."""

    def answer(self, table: RouteTable, request: Request) -> Reply | None:
        """The route of `table` for the request, answered; None when no route matches."""
        found = match(table, request.method, request.path)
        if found is None:
            return None
        handler, request.params = found
        return getattr(self, handler)(request)
