"""HelloAsso v5 API access (OAuth2 client credentials)."""

import dagster as dg
from pydantic import Field

from alumni_orchestration.ingest.helloasso.client import HelloAssoClient
from alumni_orchestration.ingest.helloasso.records import ITEM_EMAIL_LABELS
from alumni_orchestration.ingest.http import RetryBudget


class HelloAssoResource(dg.ConfigurableResource):
    client_id: str = Field(description="HELLOASSO_CLIENT_ID")
    client_secret: str = Field(description="HELLOASSO_CLIENT_SECRET")
    organization_slug: str = Field(description="HELLOASSO_ORGANIZATION_SLUG")
    api_url: str = Field(default="https://api.helloasso.com/v5")
    token_url: str = Field(default="https://api.helloasso.com/oauth2/token")
    retry_seconds: float = Field(default=90.0, description="retry budget per call before the asset fails")
    item_email_labels: str = Field(
        default=",".join(ITEM_EMAIL_LABELS),
        description="HELLOASSO_ITEM_EMAIL_LABELS: the exact labels (comma-separated, any case) of the item custom "
        "field that holds the participant's email",
    )

    def email_labels(self) -> tuple[str, ...]:
        return tuple(label.strip() for label in self.item_email_labels.split(",") if label.strip())

    def client(self) -> HelloAssoClient:
        return HelloAssoClient(
            api_url=self.api_url,
            token_url=self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            organization_slug=self.organization_slug,
            budget=RetryBudget(max_total_seconds=self.retry_seconds),
        )
