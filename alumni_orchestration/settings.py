"""Where the platform keeps its files, and the settings that are not secrets.

Everything hangs off ALUMNI_HOME (default ./.alumni). Secrets are never read here: they are
`dg.EnvVar`s on the resources.
"""

from __future__ import annotations

import os
from pathlib import Path

PARIS_TZ = "Europe/Paris"
SANDBOX_PORT = 8765

# The organisation the providers are read for, when EVENTBRITE_ORGANIZATION_ID / HELLOASSO_ORGANIZATION_SLUG
# are not set: the demo association's. The generator builds its association under these ids.
DEFAULT_EVENTBRITE_ORGANIZATION_ID = "3141592653"
DEFAULT_HELLOASSO_ORGANIZATION_SLUG = "anciens-exemple"


def alumni_home() -> Path:
    return Path(os.environ.get("ALUMNI_HOME", ".alumni")).resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("ALUMNI_WAREHOUSE", str(alumni_home() / "warehouse.duckdb")))


def demo_data_dir() -> Path:
    return alumni_home() / "demo"


def webhook_landing_dir() -> Path:
    return Path(os.environ.get("SENDGRID_WEBHOOK_LANDING", str(alumni_home() / "landing" / "sendgrid")))


def partitions_start() -> str:
    """First day of the daily partitions (Europe/Paris): the start of the history to keep."""
    return os.environ.get("ALUMNI_PARTITIONS_START", "2023-01-01")


def sandbox_url() -> str:
    return os.environ.get("ALUMNI_SANDBOX_URL", f"http://127.0.0.1:{SANDBOX_PORT}")


def eventbrite_organization_id() -> str:
    return os.environ.get("EVENTBRITE_ORGANIZATION_ID", DEFAULT_EVENTBRITE_ORGANIZATION_ID)


def helloasso_organization_slug() -> str:
    return os.environ.get("HELLOASSO_ORGANIZATION_SLUG", DEFAULT_HELLOASSO_ORGANIZATION_SLUG)


def sendgrid_host() -> str:
    return os.environ.get("SENDGRID_HOST", f"{sandbox_url()}/sendgrid")


def eventbrite_base_url() -> str:
    return os.environ.get("EVENTBRITE_BASE_URL", f"{sandbox_url()}/eventbrite/v3")


def helloasso_api_url() -> str:
    return os.environ.get("HELLOASSO_API_URL", f"{sandbox_url()}/helloasso/v5")


def helloasso_token_url() -> str:
    return os.environ.get("HELLOASSO_TOKEN_URL", f"{sandbox_url()}/helloasso/oauth2/token")


def default_membership_url() -> str:
    """The demo's membership base; a real one comes from MEMBERSHIP_DATABASE_URL, a secret read only where used."""
    return f"sqlite:///{demo_data_dir() / 'membership.sqlite'}"
