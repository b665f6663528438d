"""The uplift model asset on the campaign tests' scored association, with one complete randomised dues cycle."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.holdout import holdout_uniform
from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.scoring.uplift_assets import dues_uplift_model
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import AS_OF_TAG
from alumni_orchestration.scoring.uplift import CANDIDATES
from tests.campaign_fixture import WAVE_AS_OF

pytestmark = pytest.mark.slow


def _past_cycle(warehouse: Path) -> int:
    """A 2025 dues reminder wave in the ledger and its audience: 10% holdout among the targeted, 5% + 5% explored."""
    with duckdb.connect(str(warehouse)) as conn:
        ledger.ensure_tables(conn)
        members = conn.execute("select member_id from marts.dues_history where dues_year = 2025 and not "
                               "lifetime_covered and coalesce(first_paid_on, date '2025-12-31') >= date '2025-03-02'"
                               ).df().member_id.to_numpy()
        u = np.array([holdout_uniform(m, "dues_reminder", "2025") for m in members])
        v = np.array([holdout_uniform(m, "dues_reminder:explore", "2025") for m in members])
        targeted = u < 0.5
        arm = np.where(targeted, np.where(v < 0.1, "control", "treatment"),
                       np.where(v < 0.05, "treatment", np.where(v < 0.1, "control", None)))
        keep = arm != None  # noqa: E711 - numpy elementwise
        rows = pd.DataFrame({"campaign_id": "dues_reminder", "cycle": "2025-r1", "member_id": members[keep],
                             "period": "2025", "as_of": pd.Timestamp("2025-03-02").date(), "step": 1, "arm": arm[keep],
                             "status": np.where(arm[keep] == "treatment", "scheduled", "held_out"), "attempts": 0,
                             "marketing": True, "updated_at": pd.Timestamp("2025-03-02", tz="UTC"),
                             "stratum": np.where(targeted[keep], "targeted", "explored")})
        conn.register("past", rows)
        conn.execute(f"insert into {ledger.SENDS} by name select * from past")
        conn.execute("create schema if not exists campaigns")
        conn.execute("""create table if not exists campaigns.campaign_audience (member_id integer, campaign_id varchar,
            as_of date, cycle varchar, period varchar, step integer, "trigger" varchar, score double, reason varchar,
            arm varchar, stratum varchar, predicted_uplift double, computed_at timestamptz)""")
        audience = rows[["member_id", "campaign_id", "as_of", "cycle", "period", "step", "arm", "stratum"]].assign(
            score=np.where(rows.stratum == "targeted", 0.7, 0.3), reason="included",
            computed_at=pd.Timestamp("2025-03-02", tz="UTC"))
        conn.register("past_audience", audience)
        conn.execute("insert into campaigns.campaign_audience by name select * from past_audience")
    return int(keep.sum())


def test_the_uplift_model_trains_on_the_randomised_arms_scores_members_and_is_reused_while_data_is_unchanged(
        scored_association, tmp_path: Path) -> None:
    _, warehouse = scored_association
    mine = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, mine)
    randomised = _past_cycle(mine)
    assert randomised >= 200
    resources = {"warehouse": WarehouseResource(path=str(mine)),
                 "scoring": ScoringResource(model_dir=str(tmp_path / "models"))}
    first = dg.materialize([dues_uplift_model], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF})
    assert first.success
    model = first.asset_materializations_for_node("dues_uplift_model")[0].metadata
    assert model["refitted"].value is True and model["randomised_rows"].value > 200
    assert model["chosen_model"].text in CANDIDATES
    assert set(model["selection_qini_se"].value) == set(CANDIDATES)  # the one-standard-error rule's errors
    assert "data:image/png;base64," in model["qini_curves"].value
    with duckdb.connect(str(mine), read_only=True) as conn:
        metrics = conn.execute("select metric from scoring.model_metrics where model = 'dues_uplift'").df().metric
        scores = conn.execute("select count(*), count(distinct model_version) from scoring.member_uplift_scores"
                              ).fetchall()[0]
    assert {"qini", "auuc"} <= set(metrics)
    assert scores[0] > 100 and scores[1] == 1
    again = dg.materialize([dues_uplift_model], resources=resources, tags={AS_OF_TAG: WAVE_AS_OF})
    metadata = again.asset_materializations_for_node("dues_uplift_model")[0].metadata
    assert metadata["refitted"].value is False and metadata["model_version"] == model["model_version"]
