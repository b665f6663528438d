"""The campaign outcomes: the ledger as the dbt mart's source, and each campaign measured on its declared outcome."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.results import outcomes_within_window

STAGING = Path(__file__).resolve().parents[1] / "dbt_project/models/staging/campaigns/stg_campaigns__sends.sql"


def _describe(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute("select column_name, data_type, is_nullable, column_default from information_schema.columns "
                        "where table_schema = 'campaigns' and table_name = 'campaign_sends' "
                        "order by ordinal_position").fetchall()


def test_the_staging_pre_hook_creates_the_ledger_exactly_as_the_ledger_does() -> None:
    hooks = re.findall(r'"((?:create|alter) [^"]+)"', STAGING.read_text())
    assert len(hooks) == 3
    with duckdb.connect() as by_dbt, duckdb.connect() as by_ledger:
        for statement in hooks:
            by_dbt.execute(statement)
        ledger.ensure_tables(by_ledger)
        assert _describe(by_dbt) == _describe(by_ledger)
        key = "select constraint_column_names from duckdb_constraints() where constraint_type = 'PRIMARY KEY' " \
              "and table_name = 'campaign_sends'"
        assert by_dbt.execute(key).fetchall() == by_ledger.execute(key).fetchall()


def test_each_campaign_is_measured_on_its_declared_outcome_within_the_window() -> None:
    mart = pd.DataFrame({
        "campaign_id": ["dues_reminder"] * 3 + ["reengagement"] * 3, "cycle": ["2026-r1"] * 3 + ["2026-Q2"] * 3,
        "member_id": [1, 2, 3, 1, 2, 3], "arm": ["treatment", "control", "treatment"] * 2, "stratum": None,
        "status": ["scheduled", "held_out", "outboxed"] * 2,
        "days_to_dues_paid": [5, 40, np.nan, 3, np.nan, np.nan],
        "days_to_reengaged": [np.nan, 2, 1, np.nan, 10, 31],
        "dues_revenue_eur": [90.0, 90.0, 0.0, 45.0, 0.0, 0.0]})
    out = outcomes_within_window(mart, {"dues_reminder": "dues_paid", "reengagement": "reengaged"}, 30,
                                 ("scheduled",))
    assert out.retained.tolist() == [True, False, False, False, True, False]
    assert out.revenue_eur.tolist() == [90.0, 0.0, 0.0, 45.0, 0.0, 0.0]  # dues paid within the window only
    assert out.sent.tolist() == [True, False, False, True, False, False]
    assert set(out.stratum) == {"targeted"}
