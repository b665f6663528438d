"""Eventbrite v3 API access."""

import dagster as dg
from pydantic import Field

from alumni_orchestration.ingest.eventbrite.client import EventbriteClient
from alumni_orchestration.ingest.http import RetryBudget


class EventbriteResource(dg.ConfigurableResource):
    token: str = Field(description="private token (EVENTBRITE_TOKEN)")
    organization_id: str = Field(description="organisation id (EVENTBRITE_ORGANIZATION_ID)")
    base_url: str = Field(default="https://www.eventbriteapi.com/v3")
    retry_seconds: float = Field(default=90.0, description="retry budget per call before the asset fails")

    def client(self) -> EventbriteClient:
        return EventbriteClient(
            base_url=self.base_url,
            token=self.token,
            organization_id=self.organization_id,
            budget=RetryBudget(max_total_seconds=self.retry_seconds),
        )
