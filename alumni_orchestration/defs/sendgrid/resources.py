"""SendGrid: API key and host, and the Event Webhook's landing location and public key."""

import dagster as dg
from pydantic import Field

from alumni_orchestration.ingest.http import RetryBudget
from alumni_orchestration.ingest.sendgrid.suppressions import SendGridSuppressionsClient


class SendGridResource(dg.ConfigurableResource):
    api_key: str = Field(description="SENDGRID_API_KEY")
    host: str = Field(
        default="https://api.sendgrid.com", description="SENDGRID_HOST (EU: https://api.eu.sendgrid.com)"
    )
    webhook_landing: str = Field(
        description="where `alumni webhook` lands batches (folder or object-store URL)"
    )
    webhook_public_key: str = Field(default="", description="SENDGRID_WEBHOOK_PUBLIC_KEY (base64 DER)")
    retry_seconds: float = Field(default=90.0, description="retry budget per call before the asset fails")

    def suppressions_client(self) -> SendGridSuppressionsClient:
        return SendGridSuppressionsClient(
            host=self.host, api_key=self.api_key, budget=RetryBudget(max_total_seconds=self.retry_seconds)
        )
