"""HelloAsso v5 under /helloasso/v5 and its OAuth2 token endpoint /helloasso/oauth2/token: the
organization's forms, orders, items and payments, dated windows and continuation tokens. Members who pay
after a SendGrid dues reminder become new membership orders here."""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

import orjson

from alumni_orchestration.ingest.records import parse_timestamp
from alumni_orchestration.sandbox.pagination import helloasso_page
from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.state import (
    ApiError,
    LazyRows,
    SharedState,
    jsonl_refs,
    read_json,
    read_jsonl,
    record_of,
)
from alumni_orchestration.synthetic.timeutil import iso_paris

DEFAULT_CLIENT = ("sandbox-client", "sandbox-secret")
PUBLIC_ONLY = frozenset({"place"})  # FormPublicModel's fields that FormLightModel (the forms listing) does not have


def helloasso_error(status: int, message: str) -> ApiError:
    return ApiError(status, {"message": message})


class _Order:
    """A HelloAsso order as the sandbox indexes it: the fields it filters and sorts on, and the record
    itself as its JSON line (parsed when a page shows it) or, for orders the sandbox added, as the dict."""

    __slots__ = ("raw", "id", "date", "form_type", "form_slug", "items", "payments")

    def __init__(self, raw: bytes | dict[str, Any], order: dict[str, Any]) -> None:
        self.raw, self.id, self.date = raw, order["id"], order["date"]
        form_type, form_slug = order["formType"], order["formSlug"]
        self.form_type = sys.intern(form_type) if isinstance(form_type, str) else form_type
        self.form_slug = sys.intern(form_slug) if isinstance(form_slug, str) else form_slug
        self.items = len(order["items"]) if isinstance(order.get("items"), list) else -1
        # (id, date) of each payment; a payment dated as its order shares the order's date string
        self.payments = tuple((pay["id"], self.date if pay["date"] == self.date else pay["date"])
                              for pay in order.get("payments", []))

    def record(self) -> dict[str, Any]:
        return orjson.loads(self.raw) if isinstance(self.raw, bytes) else self.raw


def _window_slice(moments: list[dt.datetime], start: str | None, end: str | None) -> slice:
    """The positions of sorted `moments` in [start, end); a bound that does not parse is no bound."""
    lo, hi = parse_timestamp(start) if start else None, parse_timestamp(end) if end else None
    return slice(bisect_left(moments, lo) if lo is not None else 0,
                 bisect_left(moments, hi) if hi is not None else len(moments))


def _summary(o: dict[str, Any]) -> dict[str, Any]:
    return {"id": o["id"], "date": o["date"], "formSlug": o["formSlug"], "formType": o["formType"]}


def _payment_row(entry: tuple[int, Any, str, _Order]) -> dict[str, Any]:
    o = entry[3].record()
    return {**o["payments"][entry[0]], "order": _summary(o), "payer": o["payer"]}


def _item_row(entry: tuple[int, _Order]) -> dict[str, Any]:
    o = entry[1].record()
    return {**o["items"][entry[0]], "order": _summary(o), "payer": o["payer"]}


class HelloAssoProvider(Provider):
    name, prefix, api_root = "helloasso", "/helloasso", "/helloasso/v5"
    PUBLIC_ROUTES = {("POST", "/helloasso/oauth2/token"): "token_route"}
    ROUTES = {
        ("GET", "/organizations/{org}/forms"): "forms_route",
        ("GET", "/organizations/{org}/forms/{form_type}/{form_slug}/orders"): "form_orders_route",
        ("GET", "/organizations/{org}/forms/{form_type}/{form_slug}/public"): "form_public_route",
        ("GET", "/organizations/{org}/orders"): "orders_route",
        ("GET", "/organizations/{org}/items"): "items_route",
        ("GET", "/organizations/{org}/payments"): "payments_route",
        ("GET", "/organizations/{org}"): "organization_route",
    }

    def __init__(self, shared: SharedState, *, helloasso_client: tuple[str, str] = DEFAULT_CLIENT,
                 token_lifetime: int = 1800) -> None:
        super().__init__(shared)
        self.client, self.token_lifetime = helloasso_client, token_lifetime
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (kind, expires_at)
        self.org_slug = shared.organization("helloasso_slug")
        folder = shared.data / "providers" / "helloasso"
        self.forms = read_jsonl(folder / "forms.jsonl")
        # Indexed once: a listing page or a form's details must not scan every form (17,700 Event forms at
        # 1,000,000 members made the pipeline's one details call per form quadratic in the sandbox).
        self._light_forms = [{k: v for k, v in f.items() if k not in PUBLIC_ONLY} for f in self.forms]
        self._form_by_key: dict[tuple[Any, Any], dict[str, Any]] = {}
        for form in self.forms:
            self._form_by_key.setdefault((form.get("formType"), form.get("formSlug")), form)
        # Orders are kept as their JSON lines plus the fields the listings filter and sort on.
        self.orders: list[_Order] = jsonl_refs(folder / "orders.jsonl", _Order)
        self.store = shared.store
        self.store.setdefault("orders", [])
        self._added_orders = [_Order(order, order) for order in self.store["orders"]]
        # Listings are dropped when the sandbox adds an order; the order and payment indexes (by
        # parsed date) are updated in place.
        self._order_index: tuple[list[dt.datetime], list[tuple[int, _Order]]] | None = None
        self._payment_index: tuple[list[dt.datetime], list[tuple[int, int, Any, str, _Order]]] | None = None
        shared.subscribe("payment", self.add_membership_order)

    # ---- the provider's contract ----
    def authenticate(self, request: Request) -> None:
        kind, expires = self.tokens.get(request.bearer() or "", ("", 0.0))
        if kind != "access" or expires < self.shared.now():
            raise helloasso_error(401, "Unauthorized: the access token is invalid or expired")

    def not_found(self) -> ApiError:
        return helloasso_error(404, "Not found")

    def bad_json(self) -> ApiError:
        return helloasso_error(400, "The body is not valid JSON")

    def status(self) -> dict[str, Any]:
        return {"orders_created": len(self.store["orders"])}

    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type")
        with self.shared.lock:
            if grant == "client_credentials":
                if (form.get("client_id"), form.get("client_secret")) != self.client:
                    raise ApiError(400, {"error": "unauthorized_client", "error_description": "invalid client"})
            elif grant == "refresh_token":
                kind, expires = self.tokens.get(form.get("refresh_token", ""), ("", 0.0))
                if kind != "refresh" or expires < self.shared.now():
                    raise ApiError(400, {"error": "invalid_grant", "error_description": "invalid refresh token"})
                del self.tokens[form["refresh_token"]]
            else:
                raise ApiError(400, {"error": "unsupported_grant_type", "error_description": str(grant)})
            access, refresh = uuid.uuid4().hex, uuid.uuid4().hex
            self.tokens[access] = ("access", self.shared.now() + self.token_lifetime)
            self.tokens[refresh] = ("refresh", self.shared.now() + 30 * 86400)
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": self.token_lifetime}

    # ---- orders: the file's, then those the world added ----
    def add_membership_order(self, payment: dict[str, Any]) -> None:
        """A simulated member paid (after a dues reminder): their membership order."""
        recipient = next((r for r in self.shared.recipients.values() if r.member_id == payment["member_id"]), None)
        if recipient is None:
            return
        order_id = 990_000_000 + len(self.store["orders"]) + 1
        date = iso_paris([payment["paid_at"]])[0]
        cents = int(round(recipient.dues_amount_eur * 100))
        order: dict[str, Any] = {
            "id": order_id, "date": date, "formSlug": f"adhesion-{payment['cycle']}", "formType": "Membership",
            "organizationSlug": self.org_slug,
            "payer": {"email": recipient.email, "firstName": recipient.first_name, "lastName": recipient.last_name,
                      "country": "FRA"},
            "items": [{"id": order_id * 10, "amount": cents, "type": "Membership", "state": "Processed",
                       "name": f"Cotisation {payment['cycle']} — {recipient.dues_tier}",
                       "user": {"firstName": recipient.first_name, "lastName": recipient.last_name},
                       "customFields": [{"name": "Email", "type": "TextInput", "answer": recipient.email},
                                        {"name": "Promo", "type": "TextInput", "answer": recipient.graduation_year}]}],
            "payments": [{"id": order_id * 10 + 5, "amount": cents, "date": date, "paymentMeans": "Card",
                          "state": "Authorized", "type": "Credit"}],
            "amount": {"total": cents, "vat": 0, "discount": 0}, "meta": {"createdAt": date, "updatedAt": date},
        }
        with self.shared.lock:
            self.store["orders"].append(order)
            self._added_orders.append(_Order(order, order))
            self._order_added(len(self.orders) + len(self._added_orders) - 1, self._added_orders[-1])

    def all_orders(self) -> Sequence[dict[str, Any]]:
        """Every order (the file's, then those the sandbox added), each parsed when it is read."""
        return LazyRows(self._order_refs(), record_of)

    def _order_refs(self) -> list[_Order]:
        with self.shared.lock:
            return self.orders + self._added_orders

    def _order_added(self, seq: int, order: _Order) -> None:
        """A new order (at position `seq` of all_orders): update the indexes, forget the listings."""
        self.shared.drop_listings(self.name)
        if self._order_index is not None:
            moment = parse_timestamp(order.date)
            if moment is not None:
                position = bisect_left(self._order_index[0], moment)
                self._order_index[0].insert(position, moment)
                self._order_index[1].insert(position, (seq, order))
        if self._payment_index is not None:
            for pseq, (pid, pdate) in enumerate(order.payments):
                moment = parse_timestamp(pdate)
                if moment is not None:
                    position = bisect_left(self._payment_index[0], moment)
                    self._payment_index[0].insert(position, moment)
                    self._payment_index[1].insert(position, (seq, pseq, pid, pdate, order))

    def orders_in_window(self, start: str | None, end: str | None) -> list[_Order]:
        """Orders dated in [start, end) (unparseable dates never), in all_orders' order."""
        with self.shared.lock:
            if self._order_index is None:
                entries = sorted(((m, seq, o) for seq, o in enumerate(self._order_refs())
                                  if (m := parse_timestamp(o.date)) is not None), key=lambda e: (e[0], e[1]))
                self._order_index = ([e[0] for e in entries], [(e[1], e[2]) for e in entries])
            moments, orders = self._order_index
            chosen = orders[_window_slice(moments, start, end)]
        return [order for _, order in sorted(chosen, key=lambda e: e[0])]

    def payments_in_window(self, start: str | None, end: str | None) -> list[tuple[int, Any, str, _Order]]:
        """(payment's position in its order, its id, its date, order) for payments dated in [start, end), in
        all_orders' then each order's order."""
        with self.shared.lock:
            if self._payment_index is None:
                entries = sorted(((m, seq, pseq, pid, pdate, o) for seq, o in enumerate(self._order_refs())
                                  for pseq, (pid, pdate) in enumerate(o.payments)
                                  if (m := parse_timestamp(pdate)) is not None), key=lambda e: e[:3])
                self._payment_index = ([e[0] for e in entries], [e[1:] for e in entries])
            moments, payments = self._payment_index
            chosen = payments[_window_slice(moments, start, end)]
        return [(pseq, pid, pdate, o) for _, pseq, pid, pdate, o in sorted(chosen, key=lambda e: (e[0], e[1]))]

    def _listing(self, kind: str, form: tuple[str, str] | None, form_types: list[str], start: str | None,
                 end: str | None, descending: bool, details: bool) -> LazyRows:
        """A whole orders, items or payments listing: dated in [start, end), sorted by (date, id)."""
        if kind == "payments":
            payments = [e for e in self.payments_in_window(start, end) if not form_types or e[3].form_type in form_types]
            payments.sort(key=lambda e: (e[2], e[1]))
            return LazyRows(payments, _payment_row)
        orders = self.orders_in_window(start, end)
        if form is not None:
            orders = [o for o in orders if o.form_type == form[0] and o.form_slug == form[1]]
        orders = [o for o in orders if not form_types or o.form_type in form_types]
        orders.sort(key=lambda o: (o.date, o.id), reverse=descending)
        if kind == "items":
            for o in orders:
                if o.items < 0:  # "items" is not a list: fail as iterating it did
                    list(o.record()["items"])
            return LazyRows([(i, o) for o in orders for i in range(o.items)], _item_row)
        if not details:
            return LazyRows(orders, lambda o: {k: v for k, v in o.record().items() if k not in ("items", "payments")})
        return LazyRows(orders, record_of)

    # ---- routes ----
    def token_route(self, request: Request) -> Reply:
        return 200, self.issue_token(request.form())

    def forms_route(self, request: Request) -> Reply:
        """The listing is of FormLightModel, which has no place: a form's place is in its public details."""
        form_types, page_size = self._organization_query(request), self._page_size(request)
        forms = [f for f in self._light_forms if not form_types or f["formType"] in form_types]
        return 200, helloasso_page(forms, request.arg("continuationToken"), page_size, self._signature(request, form_types))

    def form_public_route(self, request: Request) -> Reply:
        """A form's public details (FormPublicModel): the listing's fields and its place."""
        self._organization_query(request)
        wanted = (request.params["form_type"], request.params["form_slug"])
        form = self._form_by_key.get(wanted)
        if form is None:
            raise self.not_found()
        return 200, form

    def form_orders_route(self, request: Request) -> Reply:
        return self._listing_reply(request, "orders", (request.params["form_type"], request.params["form_slug"]))

    def orders_route(self, request: Request) -> Reply:
        return self._listing_reply(request, "orders", None)

    def items_route(self, request: Request) -> Reply:
        return self._listing_reply(request, "items", None)

    def payments_route(self, request: Request) -> Reply:
        return self._listing_reply(request, "payments", None)

    def _listing_reply(self, request: Request, kind: str, form: tuple[str, str] | None) -> Reply:
        form_types, page_size = self._organization_query(request), self._page_size(request)
        start, end = request.arg("from"), request.arg("to")
        descending = request.arg("sortOrder") == "Desc"
        details = request.arg("withDetails", "false").lower() == "true"
        key = (self.name, request.path, tuple(sorted(set(form_types))), start, end, descending, details)
        rows = self.shared.listing(key, lambda: self._listing(kind, form, form_types, start, end, descending, details))
        return 200, helloasso_page(rows, request.arg("continuationToken"), page_size, self._signature(request, form_types))

    def _organization_query(self, request: Request) -> list[str]:
        """The form types asked for, once the organization is known to be the association's."""
        if request.params["org"] != self.org_slug:
            raise self.not_found()
        return request.query.get("formTypes") or request.query.get("formType") or []

    @staticmethod
    def _signature(request: Request, form_types: list[str]) -> str:
        """What a continuation token is bound to: the path, form types and window, not the page size."""
        return json.dumps([request.path, sorted(form_types), request.arg("from"), request.arg("to")])

    @staticmethod
    def _page_size(request: Request) -> int:
        return int(request.arg("pageSize", "20"))

    def organization_route(self, request: Request) -> Reply:
        """GET /v5/organizations/{organizationSlug}: the organisation's public details (what `alumni check` asks)."""
        if request.params["org"] != self.org_slug:
            raise self.not_found()
        stored = read_json(self.shared.data / "providers" / "helloasso" / "organization.json", {})
        return 200, {"organizationSlug": self.org_slug, "name": stored.get("name", ""), "type": "Association1901",
                     "url": f"https://www.helloasso.com/associations/{self.org_slug}"}
