"""SendGrid v3 under /sendgrid/v3: mail send with batches and scheduled sends, suppressions, the signed
Event Webhook's key. Sent mail produces the recipients' reactions, delivered by the server as signed batches."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from alumni_orchestration.contracts import mail_send_errors
from alumni_orchestration.sandbox.providers.base import Provider, Reply, Request
from alumni_orchestration.sandbox.state import ApiError, SharedState, read_json
from alumni_orchestration.sandbox.world import reactions
from alumni_orchestration.webhook import signing

SUPPRESSION_KINDS = ("bounces", "blocks", "spam_reports", "unsubscribes", "invalid_emails")
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
        ("GET", "/scopes"): "scopes_route",
    }
    CONTROL_ROUTES = {("POST", "/sandbox/replay"): "replay_route"}

    def __init__(self, shared: SharedState, *, sendgrid_keys: Callable[[str], bool] | None = None,
                 webhook_batch_size: int = 500, sendgrid_key_scopes: dict[str, list[str]] | None = None) -> None:
        super().__init__(shared)
        self.accepts_key = sendgrid_keys or (lambda key: key.startswith("SG."))
        self.key_scopes = sendgrid_key_scopes or {}  # a restricted key's scopes; other keys have full access
        self.webhook_batch_size = webhook_batch_size
        folder = shared.data / "providers" / "sendgrid"
        self.suppressions = {k: read_json(folder / f"suppressions/{k}.json", []) for k in SUPPRESSION_KINDS}
        self.asm_groups = read_json(folder / "asm_groups.json", [])
        self.asm_suppressions = read_json(folder / "asm_suppressions.json", [])
        self.key = self._signing_key()
        self.store = shared.store
        for key, empty in (("batches", {}), ("held", []), ("pending_events", []), ("outbox", []), ("sent_ids", [])):
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
                self.store["pending_events"].extend(events)
                if payment:
                    self.shared.publish("payment", payment)
                released += 1
            self.shared.append_many("sent_messages.jsonl", sent)  # durable before the state that says they were sent
            self.store["held"] = keep
            due = [e for e in self.store["pending_events"] if e["timestamp"] <= now]
            if due:
                self.store["pending_events"] = [e for e in self.store["pending_events"] if e["timestamp"] > now]
                self.store["outbox"].extend(sorted(due, key=lambda e: e["timestamp"]))
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
                    self.store["outbox"].extend(json.loads(line) for line in lines if line.strip())
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

    def _reaction_unsubscribes(self) -> list[dict[str, Any]]:
        with self.shared.lock:
            sent = [e for e in self.store["outbox"] if e.get("event") == "group_unsubscribe"]
        return [{"email": e["email"], "group_id": e["asm_group_id"], "group_name": "", "created_at": e["timestamp"]}
                for e in sent]

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
