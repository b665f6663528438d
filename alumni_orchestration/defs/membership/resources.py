"""The membership database: any SQLAlchemy URL (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa
from pydantic import Field


class MembershipDatabaseResource(dg.ConfigurableResource):
    """Set MEMBERSHIP_DATABASE_URL; it may hold a password, so it is only ever read from the environment."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg2://user:pass@host/db")
    chunk_rows: int = Field(default=50_000, description="rows fetched per round trip")

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url, pool_pre_ping=True)

    def dialect(self) -> str:
        """The backend's name, safe to show (never the URL, which may hold a password)."""
        return sa.engine.make_url(self.url).get_backend_name()
