"""The sending resource: campaigns and operational alerts leave through it, in one of three modes.

- `outbox` (the default when no SendGrid key is set): messages are rendered into the warehouse
  table campaigns.outbox and nothing leaves the machine;
- `sandbox`: the local API sandbox (SENDGRID_HOST pointing at it);
- `live`: the real SendGrid. It must be asked for explicitly (ALUMNI_SEND_MODE=live) and refuses
  a sandbox host, so a misconfiguration can never email real members by accident — nor can a
  sandbox run silently reach the real API.

Every field's default is read from the environment when the resource is built, in the run's own
process: Dagster replaces the whole resource config when a run config gives any field, so a default
baked in at definition time would silently come back (a run setting only `chunk_size` used to fall
back to `mode: outbox`). A run may still choose another mode than the deployment's, but only with
`allow_mode_override: true` in the same config.
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg
from pydantic import Field

from alumni_orchestration.campaigns.content import Sender
from alumni_orchestration.campaigns.ledger import Transport, write_alert
from alumni_orchestration.campaigns.transport import (
    OutboxTransport,
    SendGridTransport,
    is_real_host,
    sendgrid_now,
)
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.settings import sandbox_url

MODES = ("outbox", "sandbox", "live")
DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"
DEMO_ORGANIZATION = "anciens-exemple"  # as every non-secret default: the embedded demo's


def env_setting(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_sendgrid_host() -> str:
    return os.environ.get("SENDGRID_HOST", f"{sandbox_url()}/sendgrid")


def derived_send_mode(has_key: bool, host: str) -> str:
    """Without ALUMNI_SEND_MODE: a key with a non-SendGrid host means the sandbox, anything else stays in
    the outbox. Live sending is never derived."""
    explicit = os.environ.get("ALUMNI_SEND_MODE")
    if explicit:
        return explicit
    return "sandbox" if has_key and not is_real_host(host) else "outbox"


def deployment_send_mode() -> str:
    """The mode this deployment is configured for, from its environment alone."""
    return derived_send_mode("SENDGRID_API_KEY" in os.environ, env_sendgrid_host())


class EmailSenderResource(dg.ConfigurableResource):
    mode: str = Field(default_factory=deployment_send_mode,
                      description="outbox | sandbox | live (ALUMNI_SEND_MODE, else derived from the key and host)")
    allow_mode_override: bool = Field(default=False, description="a run may use another mode than the "
                                      "deployment's only with this set, in the same run config")
    api_key: str = Field(default_factory=lambda: env_setting("SENDGRID_API_KEY"),
                         description="SENDGRID_API_KEY (Mail Send and Scheduled Sends scopes)")
    host: str = Field(default_factory=env_sendgrid_host, description="SENDGRID_HOST")
    from_email: str = Field(default_factory=lambda: env_setting("ALUMNI_FROM_EMAIL", "contact@anciens-exemple.fr"),
                            description="ALUMNI_FROM_EMAIL (a verified sender)")
    from_name: str = Field(default_factory=lambda: env_setting("ALUMNI_FROM_NAME", "Association des anciens"),
                           description="ALUMNI_FROM_NAME")
    reply_to: str = Field(default_factory=lambda: env_setting("ALUMNI_REPLY_TO"), description="ALUMNI_REPLY_TO")
    organization: str = Field(default_factory=lambda: env_setting("HELLOASSO_ORGANIZATION_SLUG", DEMO_ORGANIZATION),
                              description="HelloAsso organisation slug, for payment links")
    alert_recipient: str = Field(default_factory=lambda: env_setting("ALUMNI_ALERT_EMAIL",
                                                                     "digital-lead@anciens-exemple.fr"),
                                 description="ALUMNI_ALERT_EMAIL")
    webserver_url: str = Field(default_factory=lambda: env_setting("ALUMNI_WEBSERVER_URL", DEFAULT_WEBSERVER_URL),
                               description="ALUMNI_WEBSERVER_URL, for run links")
    send_lead_minutes: float = Field(default=10.0, description="send_at this far ahead: the window in which an "
                                     "interrupted chunk can still be cancelled")
    chunk_size: int = Field(default=1000, description="personalizations per request (SendGrid allows 1,000)")
    warehouse: WarehouseResource

    def configured_mode(self) -> str:
        """The deployment's mode: ALUMNI_SEND_MODE, else what this sender's key and host imply."""
        return derived_send_mode(bool(self.api_key), self.host)

    def _check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"ALUMNI_SEND_MODE must be one of {MODES}, not {self.mode!r}")
        if self.mode != "outbox" and not self.api_key:
            raise ValueError(f"send mode {self.mode!r} needs SENDGRID_API_KEY")
        is_real = is_real_host(self.host)
        if self.mode == "live" and not is_real:
            raise ValueError("live mode sends through api.sendgrid.com (or the EU host) only; set SENDGRID_HOST")
        if self.mode == "sandbox" and is_real:
            raise ValueError("sandbox mode refuses the real SendGrid host; use ALUMNI_SEND_MODE=live on purpose")
        configured = self.configured_mode()
        if self.mode != configured and not self.allow_mode_override:
            raise ValueError(f"email_sender.mode is {self.mode!r} but this deployment sends in {configured!r} mode "
                             "(ALUMNI_SEND_MODE, or derived from SENDGRID_API_KEY and SENDGRID_HOST); to use another "
                             "mode for this run on purpose, set allow_mode_override: true in the same run config")

    def transport(self) -> Transport:
        self._check()
        if self.mode == "outbox":
            return OutboxTransport()
        return SendGridTransport(self.api_key, self.host)

    def sender(self) -> Sender:
        return Sender(from_email=self.from_email, from_name=self.from_name, reply_to=self.reply_to,
                      organization=self.organization)

    def now(self) -> dt.datetime:
        """SendGrid's clock (in sandbox mode, the sandbox's own)."""
        return sendgrid_now(self.mode, self.host)

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
