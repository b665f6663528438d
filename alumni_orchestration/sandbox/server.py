"""`alumni sandbox`: one local HTTP server standing in for SendGrid, Eventbrite and HelloAsso.

Paths mirror the real ones under /sendgrid/v3, /eventbrite/v3, /helloasso/v5 and
/helloasso/oauth2/token, with their auth, pagination, error envelopes and rate-limit headers.
Sent mail produces the recipients' reactions, delivered to the webhook URL as signed batches.

Control endpoints (the sandbox only): GET /sandbox/status, POST /sandbox/clock {"now"|"advance"},
POST /sandbox/replay {"from", "to"}.

State that must survive a restart (batches, held scheduled sends, pending webhook events, orders
created by the world) lives in <data>/sandbox_state.json, written atomically.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import requests

from alumni_orchestration.contracts import mail_send_errors
from alumni_orchestration.ingest.records import parse_timestamp
from alumni_orchestration.sandbox.pagination import BadPage, eventbrite_page, helloasso_page
from alumni_orchestration.sandbox.world import load_recipients, reactions
from alumni_orchestration.synthetic.timeutil import iso_paris
from alumni_orchestration.webhook import signing

log = logging.getLogger("alumni.sandbox")

DEFAULT_HELLOASSO_CLIENT = ("sandbox-client", "sandbox-secret")
SUPPRESSION_KINDS = ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails")
RATE_LIMIT = 600  # per minute, reported in X-RateLimit-* headers
LISTING_CACHE_SIZE = 64  # listings (one per query) kept for paging; each page then costs O(page)


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def sendgrid_error(status: int, message: str, field: str | None = None) -> ApiError:
    return ApiError(status, {"errors": [{"message": message, "field": field, "help": None}], "id": uuid.uuid4().hex})


def eventbrite_error(status: int, code: str, description: str) -> ApiError:
    return ApiError(status, {"error": code, "error_description": description, "status_code": status})


def helloasso_error(status: int, message: str) -> ApiError:
    return ApiError(status, {"message": message})


def _jsonl(path: Path) -> list[dict[str, Any]]:
    # orjson shares the keys' strings between records: a million orders take a quarter less memory.
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


class LazyRows(Sequence):
    """A listing whose rows are built only when a page asks for them: the sandbox keeps references to
    its records, not a copy of every row of every listing (gigabytes for a million-member association)."""

    def __init__(self, sources: list[Any], build: Callable[[Any], Any]) -> None:
        self.sources, self.build = sources, build

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.build(source) for source in self.sources[index]]
        return self.build(self.sources[index])

    def __iter__(self):
        return (self.build(source) for source in self.sources)


def _record(ref: Any) -> dict[str, Any]:
    return ref.record()


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


class _Attendee:
    """An Eventbrite attendee: the fields the listings filter on, and its JSON line."""

    __slots__ = ("raw", "event_id", "changed", "cancelled")

    def __init__(self, raw: bytes, attendee: dict[str, Any]) -> None:
        event_id = attendee.get("event_id")
        self.raw, self.event_id = raw, sys.intern(event_id) if isinstance(event_id, str) else event_id
        self.changed, self.cancelled = attendee.get("changed", _MISSING), attendee.get("cancelled", _MISSING)

    def record(self) -> dict[str, Any]:
        return orjson.loads(self.raw)


_MISSING: Any = object()


def _jsonl_refs(path: Path, make: Callable[[bytes, dict[str, Any]], Any]) -> list[Any]:
    """One reference per record of a JSON-lines file, each keeping its line (not the parsed record)."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return [make(line, orjson.loads(line)) for line in handle if line.strip()]


class _DuesTruth:
    """load_dues_truth's mapping, (member_id, dues_year) -> (p_pay, paid), in sorted numpy arrays."""

    def __init__(self, data_dir: Path) -> None:
        import numpy as np
        import pandas as pd

        path = data_dir / "ground_truth" / "dues_probabilities.csv"
        self._np = np
        if not path.exists():
            self.keys, self.p, self.paid = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
            return
        frame = pd.read_csv(path, usecols=["member_id", "dues_year", "p_pay", "paid"], float_precision="round_trip",
                            dtype={"member_id": np.int64, "dues_year": np.int64, "p_pay": np.float64, "paid": np.int64})
        keys = frame["member_id"].to_numpy() * 100_000 + frame["dues_year"].to_numpy()
        order = np.argsort(keys, kind="stable")  # a key given twice keeps its last value, as a dict does
        self.keys, self.p, self.paid = keys[order], frame["p_pay"].to_numpy()[order], frame["paid"].to_numpy()[order]

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: tuple[int, int], default: Any = None) -> Any:
        member_id, year = key
        if not 0 <= year < 100_000:
            return default
        wanted = int(member_id) * 100_000 + int(year)
        position = int(self._np.searchsorted(self.keys, wanted, side="right")) - 1
        if position < 0 or int(self.keys[position]) != wanted:
            return default
        return float(self.p[position]), int(self.paid[position])


class Sandbox:
    """The providers' state and behaviour, independent of HTTP."""

    def __init__(self, data_dir: Path, *, sendgrid_keys: Callable[[str], bool] | None = None,
                 eventbrite_token: str | None = None, helloasso_client: tuple[str, str] = DEFAULT_HELLOASSO_CLIENT,
                 token_lifetime: int = 1800, webhook_batch_size: int = 500) -> None:
        self.data = Path(data_dir)
        self.lock = threading.RLock()
        self.accepts_sendgrid_key = sendgrid_keys or (lambda key: key.startswith("SG."))
        self.eventbrite_token = eventbrite_token
        self.helloasso_client = helloasso_client
        self.token_lifetime = token_lifetime
        self.webhook_batch_size = webhook_batch_size
        manifest = json.loads((self.data / "manifest.json").read_text()) if (self.data / "manifest.json").exists() else {}
        self.seed = int(manifest.get("config", {}).get("seed", 0))
        self.org_id = manifest.get("organization", {}).get("eventbrite_id", "")
        self.org_slug = manifest.get("organization", {}).get("helloasso_slug", "")
        providers = self.data / "providers"
        self.eb_events = _jsonl(providers / "eventbrite/events.jsonl")
        # Attendees and orders are kept as their JSON lines plus the fields the listings filter and sort
        # on; a record is parsed only when a page shows it (a million members' records as dicts: ~8 GB).
        self.eb_attendees: list[_Attendee] = _jsonl_refs(providers / "eventbrite/attendees.jsonl", _Attendee)
        self.eb_event_ids = {e["id"] for e in self.eb_events}
        self.eb_attendees_by_event: dict[Any, list[_Attendee]] = {}
        for attendee in self.eb_attendees:  # file order within each event, as a scan of the whole list gives
            self.eb_attendees_by_event.setdefault(attendee.event_id, []).append(attendee)
        self.ha_forms = _jsonl(providers / "helloasso/forms.jsonl")
        self.ha_orders: list[_Order] = _jsonl_refs(providers / "helloasso/orders.jsonl", _Order)
        self.suppressions = {k: self._json(providers / f"sendgrid/suppressions/{k}.json", []) for k in SUPPRESSION_KINDS}
        self.asm_groups = self._json(providers / "sendgrid/asm_groups.json", [])
        self.asm_suppressions = self._json(providers / "sendgrid/asm_suppressions.json", [])
        self._recipients: dict[str, Any] | None = None  # the world's truth, loaded when first mail is sent
        self._dues_truth: _DuesTruth | None = None
        self.key = self._signing_key()
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (kind, expires_at)
        self.state_path = self.data / "sandbox_state.json"
        self.state = self._json(self.state_path, {"batches": {}, "held": [], "pending_events": [], "outbox": [],
                                                  "orders": [], "clock_offset": 0.0, "sent_ids": []})
        self.sent_ids = set(self.state["sent_ids"])
        self._added_orders = [_Order(order, order) for order in self.state["orders"]]
        # Listings are computed once per query and paged from memory. HelloAsso's are dropped when the
        # sandbox adds an order; its order and payment indexes (by parsed date) are updated in place.
        self._listings: OrderedDict[Any, list[Any]] = OrderedDict()
        self._order_index: tuple[list[dt.datetime], list[tuple[int, dict[str, Any]]]] | None = None
        self._payment_index: tuple[list[dt.datetime], list[tuple[int, int, dict, dict]]] | None = None
        self.faults_injected = 0  # 429s and 500s answered on purpose, so tests can tell faults really happened

    @property
    def recipients(self) -> dict[str, Any]:
        with self.lock:
            if self._recipients is None:
                self._recipients = load_recipients(self.data)
            return self._recipients

    @property
    def dues_truth(self) -> _DuesTruth:
        with self.lock:
            if self._dues_truth is None:
                self._dues_truth = _DuesTruth(self.data)
            return self._dues_truth

    # ---- persistence and clock ----
    @staticmethod
    def _json(path: Path, default: Any) -> Any:
        return json.loads(path.read_text()) if path.exists() else default

    def _signing_key(self):
        path = self.data / "sandbox_webhook_key.pem"
        if path.exists():
            return signing.private_key_from_pem(path.read_bytes())
        key = signing.generate_private_key()
        path.write_bytes(signing.private_key_to_pem(key))
        return key

    @property
    def public_key(self) -> str:
        return signing.public_key_b64(self.key)

    def now(self) -> float:
        return time.time() + self.state["clock_offset"]

    def save(self) -> None:
        with self.lock:
            self.state["sent_ids"] = sorted(self.sent_ids)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state))
            os.replace(tmp, self.state_path)

    def _append(self, name: str, record: dict[str, Any]) -> None:
        self._append_many(name, [record])

    def _append_many(self, name: str, records: list[dict[str, Any]]) -> None:
        """One write and one fsync for many records: a 1,000-recipient send must not cost 1,000 fsyncs."""
        if not records:
            return
        with open(self.data / name, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())

    # ---- SendGrid ----
    def check_sendgrid_auth(self, header: str | None) -> None:
        if not header or not header.startswith("Bearer ") or not self.accepts_sendgrid_key(header[7:]):
            raise sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")

    def mail_send(self, body: Any) -> int:
        errors = mail_send_errors(body, self.now())
        if errors:
            raise ApiError(400, {"errors": errors, "id": uuid.uuid4().hex})
        if ((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return 200
        batch_id = body.get("batch_id")
        with self.lock:
            if batch_id and batch_id not in self.state["batches"]:
                raise sendgrid_error(400, "invalid batch id", "batch_id")
            received = self.now()
            self._append("mail_send.jsonl", {"received_at": received, "batch_id": batch_id,
                                             "send_at": body.get("send_at"), "request": body})
            for index, personalization in enumerate(body["personalizations"]):
                for recipient in personalization.get("to", []):
                    send_at = personalization.get("send_at", body.get("send_at")) or int(received)
                    custom = {**(body.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
                    self.state["held"].append({
                        "sg_message_id": self._next_message_id(index),
                        "email": recipient["email"], "custom_args": custom, "categories": body.get("categories") or [],
                        "asm": body.get("asm"), "batch_id": batch_id, "send_at": int(send_at),
                    })
            self.release_due(persist=False)
            self.save()  # once per request, after the release
        return 202

    def _next_message_id(self, index: int) -> str:
        """Message ids follow the seed and the order of acceptance, not the wall clock: the recipients'
        draws (keyed by message id) and so a test's outcome are the same on every run."""
        self.state["messages_accepted"] = self.state.get("messages_accepted", 0) + 1
        digest = hashlib.sha256(f"{self.seed}:{self.state['messages_accepted']}".encode()).hexdigest()
        return f"{digest[:22]}.filter0001.{index}"

    def create_batch(self) -> str:
        with self.lock:
            batch_id = uuid.uuid4().hex
            self.state["batches"][batch_id] = "none"
            self.save()
        return batch_id

    def set_batch_status(self, batch_id: str, status: str | None) -> None:
        with self.lock:
            if batch_id not in self.state["batches"]:
                raise sendgrid_error(404, "batch not found", "batch_id")
            self.state["batches"][batch_id] = status or "none"
            self.release_due()
            self.save()

    def scheduled_sends(self) -> list[dict[str, str]]:
        return [{"batch_id": b, "status": s} for b, s in self.state["batches"].items() if s in ("pause", "cancel")]

    def release_due(self, persist: bool = True) -> int:
        """Send held messages whose time has come; cancelled batches never send. `persist=False` leaves the
        state file to the caller, who saves it right after."""
        with self.lock:
            now = self.now()
            keep, released, sent = [], 0, []
            for message in self.state["held"]:
                status = self.state["batches"].get(message["batch_id"], "none") if message["batch_id"] else "none"
                if status == "cancel":
                    continue
                if message["send_at"] > now or status == "pause":
                    keep.append(message)
                    continue
                if message["sg_message_id"] in self.sent_ids:
                    continue
                message = {**message, "sent_at": max(message["send_at"], int(now) - 1)}
                sent.append(message)
                self.sent_ids.add(message["sg_message_id"])
                events, payment = reactions(self.seed, message, self.recipients.get(message["email"].strip().lower()),
                                            self.dues_truth)
                self.state["pending_events"].extend(events)
                if payment:
                    self._add_membership_order(payment)
                released += 1
            self._append_many("sent_messages.jsonl", sent)  # durable before the state that says they were sent
            self.state["held"] = keep
            due = [e for e in self.state["pending_events"] if e["timestamp"] <= now]
            if due:
                self.state["pending_events"] = [e for e in self.state["pending_events"] if e["timestamp"] > now]
                self.state["outbox"].extend(sorted(due, key=lambda e: e["timestamp"]))
            if persist and (released or due):
                self.save()
            return released

    def _add_membership_order(self, payment: dict[str, Any]) -> None:
        recipient = next((r for r in self.recipients.values() if r.member_id == payment["member_id"]), None)
        if recipient is None:
            return
        order_id = 990_000_000 + len(self.state["orders"]) + 1
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
                          "state": "Authorized", "type": "Online"}],
            "amount": {"total": cents, "vat": 0, "discount": 0}, "meta": {"createdAt": date, "updatedAt": date},
        }
        self.state["orders"].append(order)
        self._added_orders.append(_Order(order, order))
        self._order_added(len(self.ha_orders) + len(self._added_orders) - 1, self._added_orders[-1])

    def replay(self, first_day: str, last_day: str) -> int:
        """Queue the association's webhook history for those days, as SendGrid posted it."""
        count = 0
        with self.lock:
            for path in sorted((self.data / "providers/sendgrid/events").glob("*.jsonl")):
                if first_day <= path.stem <= last_day:
                    lines = path.read_text().splitlines()
                    self.state["outbox"].extend(json.loads(line) for line in lines if line.strip())
                    count += len(lines)
            self.save()
        return count

    def take_webhook_batch(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state["outbox"][: self.webhook_batch_size])

    def ack_webhook_batch(self, size: int) -> None:
        with self.lock:
            del self.state["outbox"][:size]
            self.save()

    # ---- Eventbrite ----
    def check_eventbrite_auth(self, header: str | None) -> None:
        token = header[7:] if header and header.startswith("Bearer ") else None
        if not token:
            raise eventbrite_error(401, "NO_AUTH", "An OAuth token is required for this request.")
        if self.eventbrite_token is not None and token != self.eventbrite_token:
            raise eventbrite_error(403, "NOT_AUTHORIZED", "This token is not authorized for this resource.")

    # ---- HelloAsso ----
    def issue_token(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type")
        with self.lock:
            if grant == "client_credentials":
                if (form.get("client_id"), form.get("client_secret")) != self.helloasso_client:
                    raise ApiError(400, {"error": "unauthorized_client", "error_description": "invalid client"})
            elif grant == "refresh_token":
                kind, expires = self.tokens.get(form.get("refresh_token", ""), ("", 0.0))
                if kind != "refresh" or expires < self.now():
                    raise ApiError(400, {"error": "invalid_grant", "error_description": "invalid refresh token"})
                del self.tokens[form["refresh_token"]]
            else:
                raise ApiError(400, {"error": "unsupported_grant_type", "error_description": str(grant)})
            access, refresh = uuid.uuid4().hex, uuid.uuid4().hex
            self.tokens[access] = ("access", self.now() + self.token_lifetime)
            self.tokens[refresh] = ("refresh", self.now() + 30 * 86400)
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": self.token_lifetime}

    def check_helloasso_auth(self, header: str | None) -> None:
        token = header[7:] if header and header.startswith("Bearer ") else ""
        kind, expires = self.tokens.get(token, ("", 0.0))
        if kind != "access" or expires < self.now():
            raise helloasso_error(401, "Unauthorized: the access token is invalid or expired")

    def all_orders(self) -> Sequence[dict[str, Any]]:
        """Every order (the file's, then those the sandbox added), each parsed when it is read."""
        return LazyRows(self._order_refs(), _record)

    def _order_refs(self) -> list[_Order]:
        with self.lock:
            return self.ha_orders + self._added_orders

    # ---- listings: computed once per query, then paged ----
    def listing(self, key: Any, compute: Callable[[], list[Any]]) -> list[Any]:
        """The whole listing for a query (its key leaves out the page and the page size), cached."""
        with self.lock:
            rows = self._listings.get(key)
            if rows is None:
                rows = self._listings[key] = compute()
                while len(self._listings) > LISTING_CACHE_SIZE:
                    self._listings.popitem(last=False)
            else:
                self._listings.move_to_end(key)
            return rows

    def _drop_helloasso_listings(self) -> None:
        for key in [k for k in self._listings if k[0] == "helloasso"]:
            del self._listings[key]

    def _order_added(self, seq: int, order: _Order) -> None:
        """A new order (at position `seq` of all_orders): update the indexes, forget the listings."""
        self._drop_helloasso_listings()
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
        with self.lock:
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
        with self.lock:
            if self._payment_index is None:
                entries = sorted(((m, seq, pseq, pid, pdate, o) for seq, o in enumerate(self._order_refs())
                                  for pseq, (pid, pdate) in enumerate(o.payments)
                                  if (m := parse_timestamp(pdate)) is not None), key=lambda e: e[:3])
                self._payment_index = ([e[0] for e in entries], [e[1:] for e in entries])
            moments, payments = self._payment_index
            chosen = payments[_window_slice(moments, start, end)]
        return [(pseq, pid, pdate, o) for _, pseq, pid, pdate, o in sorted(chosen, key=lambda e: (e[0], e[1]))]


def _one(query: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[0] if values else default


def _window_slice(moments: list[dt.datetime], start: str | None, end: str | None) -> slice:
    """The positions of sorted `moments` in [start, end); a bound that does not parse is no bound."""
    lo, hi = parse_timestamp(start) if start else None, parse_timestamp(end) if end else None
    return slice(bisect_left(moments, lo) if lo is not None else 0,
                 bisect_left(moments, hi) if hi is not None else len(moments))


def _attendees(rows: list[_Attendee], changed_since: str | None, status: str | None) -> LazyRows:
    def changed(a: _Attendee) -> Any:
        if a.changed is _MISSING:
            raise KeyError("changed")
        return a.changed

    def cancelled(a: _Attendee) -> Any:
        if a.cancelled is _MISSING:
            raise KeyError("cancelled")
        return a.cancelled

    return LazyRows([a for a in rows if (not changed_since or changed(a) >= changed_since)
                     and (not status or (status == "attending") != cancelled(a))], _record)


def _helloasso_listing(sandbox: Sandbox, parts: list[str], form_types: list[str], start: str | None,
                       end: str | None, descending: bool, details: bool) -> LazyRows:
    """A whole HelloAsso orders, items or payments listing: dated in [start, end), sorted by (date, id)."""
    def summary(o: dict[str, Any]) -> dict[str, Any]:
        return {"id": o["id"], "date": o["date"], "formSlug": o["formSlug"], "formType": o["formType"]}

    def payment_row(entry: tuple[int, Any, str, _Order]) -> dict[str, Any]:
        o = entry[3].record()
        return {**o["payments"][entry[0]], "order": summary(o), "payer": o["payer"]}

    def item_row(entry: tuple[int, _Order]) -> dict[str, Any]:
        o = entry[1].record()
        return {**o["items"][entry[0]], "order": summary(o), "payer": o["payer"]}

    if parts[2] == "payments":
        payments = [e for e in sandbox.payments_in_window(start, end) if not form_types or e[3].form_type in form_types]
        payments.sort(key=lambda e: (e[2], e[1]))
        return LazyRows(payments, payment_row)
    orders = sandbox.orders_in_window(start, end)
    if parts[2] == "forms":
        orders = [o for o in orders if o.form_type == parts[3] and o.form_slug == parts[4]]
    orders = [o for o in orders if not form_types or o.form_type in form_types]
    orders.sort(key=lambda o: (o.date, o.id), reverse=descending)
    if parts[2] == "items":
        for o in orders:
            if o.items < 0:  # "items" is not a list: fail as iterating it did
                list(o.record()["items"])
        return LazyRows([(i, o) for o in orders for i in range(o.items)], item_row)
    if not details:
        return LazyRows(orders, lambda o: {k: v for k, v in o.record().items() if k not in ("items", "payments")})
    return LazyRows(orders, _record)


def make_handler(sandbox: Sandbox, fault_rate: float, slow_rate: float, rng: random.Random):
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
            if self.path.startswith("/sendgrid"):
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

        def _json_body(self) -> Any:
            raw = self._body()
            try:
                return json.loads(raw) if raw else None
            except json.JSONDecodeError as exc:
                raise sendgrid_error(400, "Bad Request: the body is not valid JSON") from exc

        def _fault(self) -> None:
            """Injected 429s and 500s, in each provider's own error shape."""
            if fault_rate <= 0 or rng.random() >= fault_rate:
                if slow_rate > 0 and rng.random() < slow_rate:
                    time.sleep(rng.uniform(0.3, 1.2))
                return
            reset = str(int(time.time()) + 1)
            sandbox.faults_injected += 1
            if rng.random() < 0.5:
                if self.path.startswith("/eventbrite"):
                    raise ApiError(429, {"error": "HIT_RATE_LIMIT", "error_description": "Rate limit hit.",
                                         "status_code": 429}, {"X-RateLimit-Reset": reset})
                raise ApiError(429, {"errors": [{"field": None, "message": "too many requests"}]},
                               {"X-RateLimit-Reset": reset})
            raise ApiError(500, {"errors": [{"field": None, "message": "internal error"}]})

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = url.path.rstrip("/") or "/", parse_qs(url.query)
            try:
                if path.startswith("/sandbox"):
                    return self._control(method, path)
                if path == "/helloasso/oauth2/token" and method == "POST":
                    form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
                    return self._send(200, sandbox.issue_token(form))
                if path.startswith("/sendgrid/v3"):
                    sandbox.check_sendgrid_auth(self.headers.get("Authorization"))
                    self._fault()
                    return self._sendgrid(method, path[len("/sendgrid/v3"):], query)
                if path.startswith("/eventbrite/v3"):
                    sandbox.check_eventbrite_auth(self.headers.get("Authorization"))
                    self._fault()
                    return self._eventbrite(method, path[len("/eventbrite/v3"):], query)
                if path.startswith("/helloasso/v5"):
                    sandbox.check_helloasso_auth(self.headers.get("Authorization"))
                    self._fault()
                    return self._helloasso(method, path[len("/helloasso/v5"):], query)
                self._send(404, {"errors": [{"message": "not found", "field": None}]})
            except ApiError as exc:
                self._send(exc.status, exc.body, exc.headers)
            except BadPage as exc:
                self._send(400, {"error": "BAD_PAGE", "error_description": str(exc), "status_code": 400})

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def do_PATCH(self) -> None:  # noqa: N802
            self._dispatch("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._dispatch("DELETE")

        # -- providers --
        def _sendgrid(self, method: str, path: str, query: dict[str, list[str]]) -> None:
            parts = path.strip("/").split("/")
            if method == "POST" and path == "/mail/send":
                return self._send(sandbox.mail_send(self._json_body()))
            if method == "POST" and path == "/mail/batch":
                return self._send(201, {"batch_id": sandbox.create_batch()})
            if method == "GET" and parts[:2] == ["mail", "batch"] and len(parts) == 3:
                if parts[2] not in sandbox.state["batches"]:
                    raise sendgrid_error(400, "invalid batch id", "batch_id")
                return self._send(200, {"batch_id": parts[2]})
            if parts[:2] == ["user", "scheduled_sends"]:
                if len(parts) == 2 and method == "POST":
                    body = self._json_body() or {}
                    if body.get("status") not in ("pause", "cancel") or not body.get("batch_id"):
                        raise sendgrid_error(400, "status must be pause or cancel", "status")
                    sandbox.set_batch_status(body["batch_id"], body["status"])
                    return self._send(201, {"batch_id": body["batch_id"], "status": body["status"]})
                if len(parts) == 2 and method == "GET":
                    return self._send(200, sandbox.scheduled_sends())
                batch_id = parts[2]
                if method == "GET":
                    return self._send(200, [s for s in sandbox.scheduled_sends() if s["batch_id"] == batch_id])
                if method == "PATCH":
                    body = self._json_body() or {}
                    sandbox.set_batch_status(batch_id, body.get("status"))
                    return self._send(204)
                if method == "DELETE":
                    sandbox.set_batch_status(batch_id, None)
                    return self._send(204)
            if method == "GET" and parts[0] == "suppression" and len(parts) == 2 and parts[1] in SUPPRESSION_KINDS:
                rows = sandbox.suppressions[parts[1]]
                start, end = _one(query, "start_time"), _one(query, "end_time")
                rows = [r for r in rows if (not start or r["created"] >= int(start)) and (not end or r["created"] < int(end))]
                limit = min(int(_one(query, "limit", "500")), 500)
                offset = int(_one(query, "offset", "0"))
                return self._send(200, rows[offset: offset + limit])
            if method == "GET" and path == "/asm/suppressions":
                return self._send(200, sandbox.asm_suppressions + self._reaction_unsubscribes())
            if method == "GET" and path == "/asm/groups":
                return self._send(200, sandbox.asm_groups)
            if method == "GET" and parts[:2] == ["asm", "groups"] and len(parts) == 4 and parts[3] == "suppressions":
                emails = [s["email"] for s in sandbox.asm_suppressions + self._reaction_unsubscribes()
                          if str(s["group_id"]) == parts[2]]
                return self._send(200, emails)
            if method == "GET" and parts[:5] == ["user", "webhooks", "event", "settings", "signed"]:
                return self._send(200, {"id": parts[5] if len(parts) > 5 else "default", "public_key": sandbox.public_key})
            raise sendgrid_error(404, "resource not found")

        def _reaction_unsubscribes(self) -> list[dict[str, Any]]:
            with sandbox.lock:
                sent = [e for e in sandbox.state["outbox"] if e.get("event") == "group_unsubscribe"]
            return [{"email": e["email"], "group_id": e["asm_group_id"], "group_name": "", "created_at": e["timestamp"]}
                    for e in sent]

        def _eventbrite(self, method: str, path: str, query: dict[str, list[str]]) -> None:
            parts = path.strip("/").split("/")
            page_size = int(_one(query, "page_size", "50"))
            changed_since = _one(query, "changed_since")
            if method == "GET" and len(parts) == 3 and parts[0] == "organizations" and parts[2] == "events":
                if parts[1] != sandbox.org_id:
                    raise eventbrite_error(404, "NOT_FOUND", "The organization you requested does not exist.")
                events = [e for e in sandbox.eb_events if not changed_since or e["changed"] >= changed_since]
                return self._send(200, eventbrite_page(events, "events", _one(query, "continuation"), page_size,
                                                       f"org:{changed_since}"))
            if method == "GET" and len(parts) == 3 and parts[0] == "organizations" and parts[2] == "attendees":
                if parts[1] != sandbox.org_id:
                    raise eventbrite_error(404, "NOT_FOUND", "The organization you requested does not exist.")
                status = _one(query, "status")
                rows = sandbox.listing(("eventbrite", "org-attendees", changed_since, status),
                                       lambda: _attendees(sandbox.eb_attendees, changed_since, status))
                return self._send(200, eventbrite_page(rows, "attendees", _one(query, "continuation"), page_size,
                                                       f"org-attendees:{changed_since}:{status}"))
            if method == "GET" and len(parts) == 3 and parts[0] == "events" and parts[2] == "attendees":
                if parts[1] not in sandbox.eb_event_ids:
                    raise eventbrite_error(404, "NOT_FOUND", "The event you requested does not exist.")
                status = _one(query, "status")
                event_rows = sandbox.eb_attendees_by_event.get(parts[1], [])
                rows = LazyRows(event_rows, _record) if not changed_since and not status else sandbox.listing(
                    ("eventbrite", "attendees", parts[1], changed_since, status),
                    lambda: _attendees(event_rows, changed_since, status))
                return self._send(200, eventbrite_page(rows, "attendees", _one(query, "continuation"), page_size,
                                                       f"{parts[1]}:{changed_since}:{status}"))
            raise eventbrite_error(404, "NOT_FOUND", "The path you requested does not exist.")

        def _helloasso(self, method: str, path: str, query: dict[str, list[str]]) -> None:
            parts = path.strip("/").split("/")
            if method != "GET" or len(parts) < 3 or parts[0] != "organizations" or parts[1] != sandbox.org_slug:
                raise helloasso_error(404, "Not found")
            page_size = int(_one(query, "pageSize", "20"))
            token = _one(query, "continuationToken")
            form_types = query.get("formTypes") or query.get("formType") or []
            start, end = _one(query, "from"), _one(query, "to")
            signature = json.dumps([path, sorted(form_types), start, end])
            if parts[2] == "forms" and len(parts) == 3:
                forms = [f for f in sandbox.ha_forms if not form_types or f["formType"] in form_types]
                return self._send(200, helloasso_page(forms, token, page_size, signature))
            per_form = parts[2] == "forms" and len(parts) == 6 and parts[5] == "orders"
            if not per_form and (len(parts) != 3 or parts[2] not in ("orders", "items", "payments")):
                raise helloasso_error(404, "Not found")
            descending = _one(query, "sortOrder") == "Desc"
            details = _one(query, "withDetails", "false").lower() == "true"
            key = ("helloasso", path, tuple(sorted(set(form_types))), start, end, descending, details)
            rows = sandbox.listing(key, lambda: _helloasso_listing(sandbox, parts, form_types, start, end,
                                                                   descending, details))
            return self._send(200, helloasso_page(rows, token, page_size, signature))

        def _control(self, method: str, path: str) -> None:
            body = self._json_body() if method == "POST" else None
            if path == "/sandbox/status":
                sandbox.release_due()
                with sandbox.lock:
                    return self._send(200, {"now": sandbox.now(), "held": len(sandbox.state["held"]),
                                            "pending_events": len(sandbox.state["pending_events"]),
                                            "outbox": len(sandbox.state["outbox"]), "sent": len(sandbox.sent_ids),
                                            "orders_created": len(sandbox.state["orders"])})
            if path == "/sandbox/clock" and method == "POST":
                with sandbox.lock:
                    if "now" in body:
                        sandbox.state["clock_offset"] = float(body["now"]) - time.time()
                    else:
                        sandbox.state["clock_offset"] += float(body.get("advance", 0))
                    sandbox.save()
                sandbox.release_due()
                return self._send(200, {"now": sandbox.now()})
            if path == "/sandbox/replay" and method == "POST":
                return self._send(200, {"queued": sandbox.replay(body["from"], body["to"])})
            self._send(404, {"message": "unknown sandbox control"})

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
        delay = self.tick_seconds
        session = requests.Session()
        while not self._stop.wait(delay):
            self.sandbox.release_due()
            if not self.webhook_url:
                continue
            batch = self.sandbox.take_webhook_batch()
            if not batch:
                delay = self.tick_seconds
                continue
            body = json.dumps(batch).encode()
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", signing.TIMESTAMP_HEADER: timestamp,
                       signing.SIGNATURE_HEADER: signing.sign(self.sandbox.key, timestamp, body)}
            try:
                ok = session.post(self.webhook_url, data=body, headers=headers, timeout=10).status_code < 300
            except requests.RequestException:
                ok = False
            if ok:
                self.sandbox.ack_webhook_batch(len(batch))
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
