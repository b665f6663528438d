"""SendGrid v3 under /sendgrid/v3: mail send with batches and scheduled sends, suppressions, the signed
Event Webhook's key, and the Email Activity search over what was sent (`email_activity=False` refuses it
as SendGrid does an account without that add-on). Sent mail produces the recipients' reactions, delivered by the server as signed batches."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from alumni_orchestration.contracts import mail_send_errors
from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.state import ApiError, SharedState, read_json
from alumni_orchestration.sandbox.world import reactions
from alumni_orchestration.webhook import signing

SUPPRESSION_KINDS = ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails")
# The kinds whose documented examples carry `smtp-id` (Event Webhook Reference; tests/fixtures/providers/sendgrid).
SMTP_ID_KINDS = frozenset({"processed", "dropped", "delivered", "deferred", "bounce", "spamreport",
                           "group_unsubscribe", "group_resubscribe"})


def bounce_classification(event: dict[str, Any]) -> str:
    """SendGrid's classification of a bounce or block, from its enhanced status code."""
    status = str(event.get("status") or "")
    if status.startswith("5.1."):
        return "Invalid Address"
    if status.startswith("5.7."):
        return "Reputation"
    return "Unclassified"


def as_posted(event: dict[str, Any]) -> dict[str, Any]:
    """An event in the documented webhook shape: `smtp-id` (the first half of sg_message_id, as documented;
    none for an asynchronous bounce, which has no message id) and a bounce's `bounce_classification`."""
    posted = dict(event)
    message_id = event.get("sg_message_id")
    if event.get("event") in SMTP_ID_KINDS and isinstance(message_id, str) and "smtp-id" not in event:
        posted["smtp-id"] = f"<{message_id.split('.')[0]}@ismtpd-sandbox>"
    if event.get("event") == "bounce" and "bounce_classification" not in event:
        posted["bounce_classification"] = bounce_classification(event)
    return posted


# What GET /v3/scopes answers for a full-access key (SendGrid's names, from its API key permissions list),
# unless the sandbox is told a key's own scopes (`sendgrid_key_scopes`).
FULL_ACCESS_SCOPES = (
    "asm.groups.read", "asm.groups.suppressions.read", "mail.batch.create", "mail.batch.delete", "mail.batch.read",
    "mail.batch.update", "mail.send", *(f"suppression.{kind}.read" for kind in SUPPRESSION_KINDS), "suppression.read",
    "user.scheduled_sends.create", "user.scheduled_sends.delete", "user.scheduled_sends.read",
    "user.scheduled_sends.update", "user.webhooks.event.settings.read",
)


def sendgrid_error(status: int, message: str, field: str | None = None) -> ApiError:
    return ApiError(status, {"errors": [{"message": message, "field": field, "help": None}], "id": uuid.uuid4().hex})


_ACTIVITY_CONDITION = re.compile(r"""(unique_args\['[\w-]+'\]|to_email|msg_id|status|from_email|subject)\s*=\s*"([^"]*)\"""")
_ACTIVITY_WINDOW = re.compile(r'last_event_time\s+BETWEEN\s+TIMESTAMP\s+"([^"]+)"\s+AND\s+TIMESTAMP\s+"([^"]+)"')


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_activity_query(query: str) -> tuple[dict[str, str], tuple[float, float] | None]:
    """The part of Email Activity's query language the sandbox answers: `field="value"` conditions and one
    `last_event_time BETWEEN TIMESTAMP ... AND TIMESTAMP ...`, joined by AND; anything else is SendGrid's
    400 "invalid syntax"."""
    window = None
    if between := _ACTIVITY_WINDOW.search(query):
        window = (_epoch(between.group(1)), _epoch(between.group(2)))
        query = query[:between.start()] + query[between.end():]
    wanted: dict[str, str] = {}
    for part in re.split(r"\bAND\b", query):
        part = part.strip().strip("()").strip()
        if not part:
            continue
        condition = _ACTIVITY_CONDITION.fullmatch(part)
        if condition is None:
            raise ApiError(400, {"errors": [{"message": f"invalid syntax: {part[:80]}"}]})
        wanted[condition.group(1)] = condition.group(2)
    return wanted, window


class SendGridProvider(Provider):
    name, prefix, api_root = "sendgrid", "/sendgrid", "/sendgrid/v3"
    rate_limit_headers = True
    ROUTES = {
        ("POST", "/mail/send"): "mail_send_route",
        ("POST", "/mail/batch"): "create_batch_route",
        ("GET", "/mail/batch/{batch_id}"): "batch_route",
        ("POST", "/user/scheduled_sends"): "pause_or_cancel_route",
        ("GET", "/user/scheduled_sends"): "scheduled_sends_route",
        ("GET", "/user/scheduled_sends/{batch_id}"): "scheduled_send_route",
        ("PATCH", "/user/scheduled_sends/{batch_id}"): "update_scheduled_send_route",
        ("DELETE", "/user/scheduled_sends/{batch_id}"): "delete_scheduled_send_route",
        ("GET", "/suppression/{kind}"): "suppressions_route",
        ("GET", "/asm/suppressions"): "asm_suppressions_route",
        ("GET", "/asm/groups"): "asm_groups_route",
        ("GET", "/asm/groups/{group_id}/suppressions"): "asm_group_suppressions_route",
        ("GET", "/user/webhooks/event/settings/signed"): "webhook_key_route",
        ("GET", "/user/webhooks/event/settings/signed/{id}"): "webhook_key_route",
        ("GET", "/messages"): "messages_route",
        ("GET", "/scopes"): "scopes_route",
    }
    CONTROL_ROUTES = {("POST", "/sandbox/replay"): "replay_route"}

    def __init__(self, shared: SharedState, *, sendgrid_keys: Callable[[str], bool] | None = None,
                 webhook_batch_size: int = 500, email_activity: bool = True,
                 sendgrid_key_scopes: dict[str, list[str]] | None = None) -> None:
        super().__init__(shared)
        self.email_activity = email_activity  # False: an account without the Email Activity add-on
        self.accepts_key = sendgrid_keys or (lambda key: key.startswith("SG."))
        self.key_scopes = sendgrid_key_scopes or {}  # a restricted key's scopes; other keys have full access
        self.webhook_batch_size = webhook_batch_size
        folder = shared.data / "providers" / "sendgrid"
        self.suppressions = {k: read_json(folder / f"suppressions/{k}.json", []) for k in SUPPRESSION_KINDS}
        self.asm_groups = read_json(folder / "asm_groups.json", [])
        self.asm_suppressions = read_json(folder / "asm_suppressions.json", [])
        self.key = self._signing_key()
        self.store = shared.store
        for key, empty in (("batches", {}), ("held", []), ("pending_events", []), ("outbox", []), ("sent_ids", []),
                           ("group_unsubscribes", [])):
            self.store.setdefault(key, empty)
        self.sent_ids = set(self.store["sent_ids"])
        shared.before_save(self._store_sent_ids)

    def _signing_key(self):
        path = self.shared.data / "sandbox_webhook_key.pem"
        if path.exists():
            return signing.private_key_from_pem(path.read_bytes())
        key = signing.generate_private_key()
        path.write_bytes(signing.private_key_to_pem(key))
        return key

    def _store_sent_ids(self) -> None:
        self.store["sent_ids"] = sorted(self.sent_ids)

    @property
    def public_key(self) -> str:
        return signing.public_key_b64(self.key)

    # ---- the provider's contract ----
    def authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization")
        if not header or not header.startswith("Bearer ") or not self.accepts_key(header[7:]):
            raise sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")

    def not_found(self) -> ApiError:
        return sendgrid_error(404, "resource not found")

    def bad_json(self) -> ApiError:
        return sendgrid_error(400, "Bad Request: the body is not valid JSON")

    def status(self) -> dict[str, Any]:
        return {"held": len(self.store["held"]), "pending_events": len(self.store["pending_events"]),
                "outbox": len(self.store["outbox"]), "sent": len(self.sent_ids)}

    def tick(self) -> None:
        self.release_due()

    # ---- mail send, batches, scheduled sends ----
    def mail_send(self, body: Any) -> int:
        errors = mail_send_errors(body, self.shared.now())
        if errors:
            raise ApiError(400, {"errors": errors, "id": uuid.uuid4().hex})
        if ((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return 200
        batch_id = body.get("batch_id")
        with self.shared.lock:
            if batch_id and batch_id not in self.store["batches"]:
                raise sendgrid_error(400, "invalid batch id", "batch_id")
            received = self.shared.now()
            self.shared.append("mail_send.jsonl", {"received_at": received, "batch_id": batch_id,
                                                   "send_at": body.get("send_at"), "request": body})
            for index, personalization in enumerate(body["personalizations"]):
                for recipient in personalization.get("to", []):
                    send_at = personalization.get("send_at", body.get("send_at")) or int(received)
                    custom = {**(body.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
                    self.store["held"].append({
                        "sg_message_id": self._next_message_id(index),
                        "email": recipient["email"], "custom_args": custom, "categories": body.get("categories") or [],
                        "asm": body.get("asm"), "batch_id": batch_id, "send_at": int(send_at),
                    })
            self.release_due(persist=False)
            self.shared.save()  # once per request, after the release
        return 202

    def _next_message_id(self, index: int) -> str:
        """Message ids follow the seed and the order of acceptance, not the wall clock: the recipients'
        draws (keyed by message id) and so a test's outcome are the same on every run."""
        self.store["messages_accepted"] = self.store.get("messages_accepted", 0) + 1
        digest = hashlib.sha256(f"{self.shared.seed}:{self.store['messages_accepted']}".encode()).hexdigest()
        return f"{digest[:22]}.filter0001.{index}"

    def create_batch(self) -> str:
        with self.shared.lock:
            batch_id = uuid.uuid4().hex
            self.store["batches"][batch_id] = "none"
            self.shared.save()
        return batch_id

    def set_batch_status(self, batch_id: str, status: str | None) -> None:
        with self.shared.lock:
            if batch_id not in self.store["batches"]:
                raise sendgrid_error(404, "batch not found", "batch_id")
            self.store["batches"][batch_id] = status or "none"
            self.release_due()
            self.shared.save()

    def scheduled_sends(self) -> list[dict[str, str]]:
        return [{"batch_id": b, "status": s} for b, s in self.store["batches"].items() if s in ("pause", "cancel")]

    def release_due(self, persist: bool = True) -> int:
        """Send held messages whose time has come; cancelled batches never send. `persist=False` leaves the
        state file to the caller, who saves it right after."""
        with self.shared.lock:
            now = self.shared.now()
            keep, released, sent = [], 0, []
            for message in self.store["held"]:
                status = self.store["batches"].get(message["batch_id"], "none") if message["batch_id"] else "none"
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
                recipient = self.shared.recipients.get(message["email"].strip().lower())
                events, payment = reactions(self.shared.seed, message, recipient, self.shared.dues_truth)
                self.store["pending_events"].extend(as_posted(e) for e in events)
                if payment:
                    self.shared.publish("payment", payment)
                released += 1
            self.shared.append_many("sent_messages.jsonl", sent)  # durable before the state that says they were sent
            self.store["held"] = keep
            due = [e for e in self.store["pending_events"] if e["timestamp"] <= now]
            if due:
                self.store["pending_events"] = [e for e in self.store["pending_events"] if e["timestamp"] > now]
                self.store["outbox"].extend(sorted(due, key=lambda e: e["timestamp"]))
                self._record_group_unsubscribes(due)
            if persist and (released or due):
                self.shared.save()
            return released

    # ---- the Event Webhook's queue (delivered by the server) ----
    def replay(self, first_day: str, last_day: str) -> int:
        """Queue the association's webhook history for those days, as SendGrid posted it."""
        count = 0
        with self.shared.lock:
            for path in sorted((self.shared.data / "providers/sendgrid/events").glob("*.jsonl")):
                if first_day <= path.stem <= last_day:
                    lines = path.read_text().splitlines()
                    self.store["outbox"].extend(as_posted(json.loads(line)) for line in lines if line.strip())
                    count += len(lines)
            self.shared.save()
        return count

    def take_webhook_batch(self) -> list[dict[str, Any]]:
        with self.shared.lock:
            return list(self.store["outbox"][: self.webhook_batch_size])

    def ack_webhook_batch(self, size: int) -> None:
        with self.shared.lock:
            del self.store["outbox"][:size]
            self.shared.save()

    def _record_group_unsubscribes(self, due: list[dict[str, Any]]) -> None:
        """A group unsubscribe, once it has happened, stays in the group's suppressions (as at SendGrid),
        whether or not its webhook event was delivered yet."""
        names = {g.get("id"): g.get("name", "") for g in self.asm_groups}
        self.store["group_unsubscribes"].extend(
            {"email": e["email"], "group_id": e["asm_group_id"], "group_name": names.get(e["asm_group_id"], ""),
             "created_at": e["timestamp"]} for e in due if e.get("event") == "group_unsubscribe")

    def _reaction_unsubscribes(self) -> list[dict[str, Any]]:
        with self.shared.lock:
            return list(self.store["group_unsubscribes"])

    # ---- Email Activity (a paid add-on on a real account; `email_activity=False` plays an account without it) ----
    def search_messages(self, query: str, limit: int) -> list[dict[str, Any]]:
        """The sent messages matching an Email Activity query: `field="value"` (to_email, msg_id, status,
        unique_args['key']) and `last_event_time BETWEEN TIMESTAMP "..." AND TIMESTAMP "..."`, joined by AND."""
        wanted, window = parse_activity_query(query)
        path = self.shared.data / "sent_messages.jsonl"
        with self.shared.lock:
            lines = path.read_text().splitlines() if path.exists() else []
        found = []
        for line in lines:
            message = json.loads(line)
            listed = {"from_email": "", "msg_id": message["sg_message_id"], "subject": "", "to_email": message["email"],
                      "status": "delivered", "opens_count": 0, "clicks_count": 0,
                      "last_event_time": _iso(message["sent_at"]), "last_timestamp": message["sent_at"]}
            fields = {**{f"unique_args['{k}']": str(v) for k, v in message["custom_args"].items()}, **listed}
            if window and not window[0] <= message["sent_at"] <= window[1]:
                continue
            if all(str(fields.get(name, "")) == value for name, value in wanted.items()):
                found.append(listed)
                if len(found) == limit:
                    break
        return found

    def messages_route(self, request: Request) -> Reply:
        if not self.email_activity:  # what SendGrid answers an account without the add-on
            raise ApiError(400, {"errors": [{"message": "authorization required"}]})
        limit = int(request.arg("limit", "10"))
        if not 0 < limit <= 1000:
            raise ApiError(400, {"errors": [{"message": "limit must be greater than 0 and at most 1000"}]})
        return 200, {"messages": self.search_messages(request.arg("query", "") or "", limit)}

    # ---- routes ----
    def mail_send_route(self, request: Request) -> Reply:
        return self.mail_send(request.json()), None

    def create_batch_route(self, request: Request) -> Reply:
        return 201, {"batch_id": self.create_batch()}

    def batch_route(self, request: Request) -> Reply:
        batch_id = request.params["batch_id"]
        if batch_id not in self.store["batches"]:
            raise sendgrid_error(400, "invalid batch id", "batch_id")
        return 200, {"batch_id": batch_id}

    def pause_or_cancel_route(self, request: Request) -> Reply:
        body = request.json() or {}
        if body.get("status") not in ("pause", "cancel") or not body.get("batch_id"):
            raise sendgrid_error(400, "status must be pause or cancel", "status")
        self.set_batch_status(body["batch_id"], body["status"])
        return 201, {"batch_id": body["batch_id"], "status": body["status"]}

    def scheduled_sends_route(self, request: Request) -> Reply:
        return 200, self.scheduled_sends()

    def scheduled_send_route(self, request: Request) -> Reply:
        return 200, [s for s in self.scheduled_sends() if s["batch_id"] == request.params["batch_id"]]

    def update_scheduled_send_route(self, request: Request) -> Reply:
        body = request.json() or {}
        self.set_batch_status(request.params["batch_id"], body.get("status"))
        return 204, None

    def delete_scheduled_send_route(self, request: Request) -> Reply:
        self.set_batch_status(request.params["batch_id"], None)
        return 204, None

    def suppressions_route(self, request: Request) -> Reply:
        if request.params["kind"] not in SUPPRESSION_KINDS:
            raise self.not_found()
        rows = self.suppressions[request.params["kind"]]
        start, end = request.arg("start_time"), request.arg("end_time")
        rows = [r for r in rows if (not start or r["created"] >= int(start)) and (not end or r["created"] < int(end))]
        limit = min(int(request.arg("limit", "500")), 500)
        offset = int(request.arg("offset", "0"))
        return 200, rows[offset: offset + limit]

    def asm_suppressions_route(self, request: Request) -> Reply:
        return 200, self.asm_suppressions + self._reaction_unsubscribes()

    def asm_groups_route(self, request: Request) -> Reply:
        return 200, self.asm_groups

    def asm_group_suppressions_route(self, request: Request) -> Reply:
        return 200, [s["email"] for s in self.asm_suppressions + self._reaction_unsubscribes()
                     if str(s["group_id"]) == request.params["group_id"]]

    def webhook_key_route(self, request: Request) -> Reply:
        return 200, {"id": request.params.get("id", "default"), "public_key": self.public_key}

    def replay_route(self, request: Request) -> Reply:
        body = request.json()
        return 200, {"queued": self.replay(body["from"], body["to"])}

    def scopes_route(self, request: Request) -> Reply:
        key = request.bearer() or ""
        return 200, {"scopes": list(self.key_scopes.get(key, FULL_ACCESS_SCOPES))}
