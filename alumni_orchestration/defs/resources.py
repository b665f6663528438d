"""Binds every resource from the environment. See the README's "Configuration" table.

Secrets (database URL, API keys, tokens, client secrets) are always `dg.EnvVar`s, so their values
never appear in the UI, run config, logs or metadata. Non-secret settings fall back to the
embedded demo: a SQLite membership base and the local sandbox under $ALUMNI_HOME.
"""

from __future__ import annotations

import os

import dagster as dg

from alumni_orchestration import settings
from alumni_orchestration.defs.membership.resources import MembershipDatabaseResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource


def setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dg.definitions
def resources() -> dg.Definitions:
    if "MEMBERSHIP_DATABASE_URL" not in os.environ:
        # The embedded default holds no secret; a real URL is only ever taken as an EnvVar.
        os.environ["MEMBERSHIP_DATABASE_URL"] = f"sqlite:///{settings.demo_data_dir() / 'membership.sqlite'}"
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(path=setting("ALUMNI_WAREHOUSE", str(settings.warehouse_path()))),
            "membership_db": MembershipDatabaseResource(url=dg.EnvVar("MEMBERSHIP_DATABASE_URL")),
        }
    )
