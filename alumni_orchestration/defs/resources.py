"""Binds every resource from the environment. See the README's "Configuration" table.

Secrets (database URL, API keys, tokens, client secrets) are always `dg.EnvVar`s, so their values
never appear in the UI, run config, logs or metadata; the sending key alone is read by the sender
itself from SENDGRID_API_KEY (see `email_sender`). Non-secret settings default to the
embedded demo: a SQLite membership base and the local sandbox, under $ALUMNI_HOME.
"""

import os

import dagster as dg

from alumni_orchestration import settings
from alumni_orchestration.defs.campaigns.resources import EmailSenderResource
from alumni_orchestration.defs.eventbrite.resources import EventbriteResource
from alumni_orchestration.defs.helloasso.resources import HelloAssoResource
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.sendgrid.resources import SendGridResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.ingest.helloasso.records import ITEM_EMAIL_LABELS


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def email_sender(warehouse: WarehouseResource, sendgrid_host: str) -> EmailSenderResource:
    """The sender reads its settings from the environment itself (the key included, as SENDGRID_API_KEY, so
    it is never in config, UI or logs): a run config giving one field must keep all the others, and a value
    given here, an EnvVar especially, would be dropped or left unresolved by such a run config."""
    return EmailSenderResource(host=sendgrid_host, warehouse=warehouse)


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
            item_email_labels=setting("HELLOASSO_ITEM_EMAIL_LABELS", ",".join(ITEM_EMAIL_LABELS)),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
