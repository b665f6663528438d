"""Binds every resource from the environment. See the README's "Configuration" table.

Secrets (database URL, API keys, tokens, client secrets) are always `dg.EnvVar`s, so their values
never appear in the UI, run config, logs or metadata. Non-secret settings default to the
embedded demo: a SQLite membership base and the local sandbox, under $ALUMNI_HOME.
"""

import os

import dagster as dg

from alumni_orchestration import settings
from alumni_orchestration.defs.campaigns.resources import REAL_HOSTS, EmailSenderResource
from alumni_orchestration.defs.eventbrite.resources import EventbriteResource
from alumni_orchestration.defs.helloasso.resources import HelloAssoResource
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.sendgrid.resources import SendGridResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def send_mode(sendgrid_host: str) -> str:
    """Explicit ALUMNI_SEND_MODE wins; otherwise a key with the sandbox host means the sandbox, and
    anything else stays in the outbox. Live sending is never a default."""
    if "ALUMNI_SEND_MODE" in os.environ:
        return os.environ["ALUMNI_SEND_MODE"]
    if "SENDGRID_API_KEY" in os.environ and sendgrid_host.rstrip("/") not in REAL_HOSTS:
        return "sandbox"
    return "outbox"


def email_sender(warehouse: WarehouseResource, sendgrid_host: str) -> EmailSenderResource:
    mode = send_mode(sendgrid_host)
    return EmailSenderResource(
        mode=mode,
        api_key=dg.EnvVar("SENDGRID_API_KEY") if "SENDGRID_API_KEY" in os.environ else "",
        host=sendgrid_host,
        from_email=setting("ALUMNI_FROM_EMAIL", "contact@anciens-exemple.fr"),
        from_name=setting("ALUMNI_FROM_NAME", "Association des anciens"),
        reply_to=setting("ALUMNI_REPLY_TO", ""),
        organization=settings.helloasso_organization_slug(),
        alert_recipient=setting("ALUMNI_ALERT_EMAIL", "digital-lead@anciens-exemple.fr"),
        webserver_url=setting("ALUMNI_WEBSERVER_URL", "http://127.0.0.1:3000"),
        warehouse=warehouse,
    )


def build_resources() -> dict[str, dg.ConfigurableResource]:
    # A real URL may hold a password: it is only ever read as an EnvVar. The default holds no secret.
    membership_url = (dg.EnvVar("MEMBERSHIP_DATABASE_URL") if "MEMBERSHIP_DATABASE_URL" in os.environ
                      else settings.default_membership_url())
    warehouse = WarehouseResource(path=str(settings.warehouse_path()))
    sendgrid_host = settings.sendgrid_host()
    return {
        "warehouse": warehouse,
        "email_sender": email_sender(warehouse, sendgrid_host),
        "membership_db": MembershipDatabaseResource(url=membership_url),
        "sendgrid": SendGridResource(
            api_key=dg.EnvVar("SENDGRID_API_KEY"),
            host=sendgrid_host,
            webhook_landing=str(settings.webhook_landing_dir()),
            webhook_public_key=dg.EnvVar("SENDGRID_WEBHOOK_PUBLIC_KEY")
            if "SENDGRID_WEBHOOK_PUBLIC_KEY" in os.environ
            else "",
        ),
        "eventbrite": EventbriteResource(
            token=dg.EnvVar("EVENTBRITE_TOKEN"),
            organization_id=settings.eventbrite_organization_id(),
            base_url=settings.eventbrite_base_url(),
        ),
        "helloasso": HelloAssoResource(
            client_id=dg.EnvVar("HELLOASSO_CLIENT_ID"),
            client_secret=dg.EnvVar("HELLOASSO_CLIENT_SECRET"),
            organization_slug=settings.helloasso_organization_slug(),
            api_url=settings.helloasso_api_url(),
            token_url=settings.helloasso_token_url(),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
