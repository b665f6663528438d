"""Where the platform keeps its files. Everything hangs off ALUMNI_HOME (default ./.alumni)."""

from __future__ import annotations

import os
from pathlib import Path

PARIS_TZ = "Europe/Paris"


def alumni_home() -> Path:
    return Path(os.environ.get("ALUMNI_HOME", ".alumni")).resolve()


def warehouse_path() -> Path:
    return alumni_home() / "warehouse.duckdb"


def demo_data_dir() -> Path:
    return alumni_home() / "demo"


def webhook_landing_dir() -> Path:
    return Path(os.environ.get("SENDGRID_WEBHOOK_LANDING", str(alumni_home() / "landing" / "sendgrid")))
