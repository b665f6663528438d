"""The sending resource: campaigns and operational alerts leave through it, in one of three modes.

- `outbox` (the default when no SendGrid key is set): messages are rendered into the warehouse
  table campaigns.outbox and nothing leaves the machine;
- `sandbox`: the local API sandbox (SENDGRID_HOST pointing at it);
- `live`: the real SendGrid. It must be asked for explicitly (ALUMNI_SEND_MODE=live) and refuses
  a sandbox host, so a misconfiguration can never email real members by accident — nor can a
  sandbox run silently reach the real API.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import requests
from pydantic import Field

from alumni_orchestration.campaigns.content import Sender
from alumni_orchestration.campaigns.ledger import Transport, write_alert
from alumni_orchestration.campaigns.transport import OutboxTransport, SendGridTransport
from alumni_orchestration.defs.warehouse.resources import WarehouseResource

MODES = ("outbox", "sandbox", "live")
REAL_HOSTS = ("https://api.sendgrid.com", "https://api.eu.sendgrid.com")


class EmailSenderResource(dg.ConfigurableResource):
    mode: str = Field(default="outbox", description="outbox | sandbox | live (ALUMNI_SEND_MODE)")
    api_key: str = Field(default="", description="SENDGRID_API_KEY (Mail Send and Scheduled Sends scopes)")
    host: str = Field(default="", description="SENDGRID_HOST")
    from_email: str = Field(default="contact@anciens-exemple.fr", description="ALUMNI_FROM_EMAIL (a verified sender)")
    from_name: str = Field(default="Association des anciens", description="ALUMNI_FROM_NAME")
    reply_to: str = Field(default="", description="ALUMNI_REPLY_TO")
    organization: str = Field(default="", description="HelloAsso organisation slug, for payment links")
    alert_recipient: str = Field(default="digital-lead@anciens-exemple.fr", description="ALUMNI_ALERT_EMAIL")
    webserver_url: str = Field(default="http://127.0.0.1:3000", description="ALUMNI_WEBSERVER_URL, for run links")
    send_lead_minutes: float = Field(default=10.0, description="send_at this far ahead: the window in which an "
                                     "interrupted chunk can still be cancelled")
    chunk_size: int = Field(default=1000, description="personalizations per request (SendGrid allows 1,000)")
    warehouse: WarehouseResource

    def _check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ALUMNI_SEND_MODE must be one of {MODES}, not {self.mode!r}")
        if self.mode != "outbox" and not self.api_key:
            raise ValueError(f"send mode {self.mode!r} needs SENDGRID_API_KEY")
        is_real = self.host.rstrip("/") in REAL_HOSTS
        if self.mode == "live" and not is_real:
            raise ValueError("live mode sends through api.sendgrid.com (or the EU host) only; set SENDGRID_HOST")
        if self.mode == "sandbox" and is_real:
            raise ValueError("sandbox mode refuses the real SendGrid host; use ALUMNI_SEND_MODE=live on purpose")

    def transport(self) -> Transport:
        self._check()
        if self.mode == "outbox":
            return OutboxTransport()
        return SendGridTransport(self.api_key, self.host)

    def sender(self) -> Sender:
        return Sender(from_email=self.from_email, from_name=self.from_name, reply_to=self.reply_to,
                      organization=self.organization)

    def now(self) -> dt.datetime:
        """The sender's clock. In sandbox mode it is the sandbox's own, which a demo may move to replay a
        past month: send times must be valid for the SendGrid that receives them."""
        if self.mode != "sandbox":
            return dt.datetime.now(dt.UTC)
        root = self.host.rstrip("/").removesuffix("/sendgrid")
        response = requests.get(f"{root}/sandbox/status", timeout=30)
        response.raise_for_status()
        return dt.datetime.fromtimestamp(float(response.json()["now"]), dt.UTC)

    @property
    def lead(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.send_lead_minutes)

    def send_alert(self, subject: str, text: str) -> None:
        """An operational message to the digital lead: immediate, transactional, no unsubscribe group."""
        self._check()
        if self.mode == "outbox":
            write_alert(self.warehouse.write, self.alert_recipient, subject, text, dt.datetime.now(dt.UTC))
            return
        body = {"personalizations": [{"to": [{"email": self.alert_recipient}]}],
                "from": {"email": self.from_email, "name": self.from_name}, "subject": subject,
                "content": [{"type": "text/plain", "value": text}], "categories": ["alert"]}
        SendGridTransport(self.api_key, self.host).send_now(body)
