"""scoring.member_score_reasons: why each current member's scores are what they are (see scoring/explain.py)."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import joblib
import pandas as pd
from threadpoolctl import threadpool_limits

from alumni_orchestration.defs.scoring.assets import MARTS, MEMBERS_QUERY, MODEL, SCORES, latest_model
from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.scoring.engagement import dbt_vars, decayed_activity
from alumni_orchestration.scoring.explain import (
    days_since_last,
    dues_explanations,
    engagement_contributions,
    engagement_reasons,
    engagement_signal_terms,
)
from alumni_orchestration.scoring.features import point_in_time_features
from alumni_orchestration.scoring.history import ACTIVITY_COLUMNS
from alumni_orchestration.warehouse import WAREHOUSE_POOL

REASONS = dg.AssetKey(["scoring", "member_score_reasons"])
REASONS_TABLE = "scoring.member_score_reasons"


def model_of_version(model_dir: str, version: str) -> dict:
    """The saved model that scored scoring.dues_propensity (its version), else the latest one."""
    path = Path(model_dir) / "dues_propensity" / f"{version}.joblib"
    return joblib.load(path) if path.is_file() else latest_model(model_dir)


def _read(warehouse: WarehouseResource) -> dict[str, pd.DataFrame]:
    with warehouse.read() as conn:
        return {
            "activity": conn.execute(f"select {', '.join(ACTIVITY_COLUMNS)} from marts.member_activity_daily").df(),
            "dues": conn.execute("select member_id, dues_year, paid, tier, first_paid_on, lifetime_covered "
                                 "from marts.dues_history").df(),
            "members": conn.execute(MEMBERS_QUERY).df(),
            "propensity": conn.execute("select member_id, as_of, dues_propensity, model_version "
                                       "from scoring.dues_propensity").df(),
            "scores": conn.execute("select member_id from scoring.member_scores").df(),
            "engagement": conn.execute("select * from marts.member_engagement").df(),
            "roles": conn.execute("select member_id, started_on, ended_on "
                                  "from staging.stg_membership__volunteer_roles").df(),
            "memberships": conn.execute("select member_id, is_leader, left_on "
                                        "from staging.stg_membership__group_memberships").df(),
        }


def engagement_explained(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    engagement = data["engagement"]
    as_of = pd.Timestamp(engagement.as_of.max()).date()
    cut = pd.Timestamp(as_of)
    roles, memberships = data["roles"], data["memberships"]
    started, ended = pd.to_datetime(roles.started_on), pd.to_datetime(roles.ended_on)
    active_roles = roles[(started <= cut) & (ended.isna() | (ended >= cut))].groupby("member_id").size()
    left = pd.to_datetime(memberships.left_on)
    led = memberships[memberships.is_leader & (left.isna() | (left >= cut))].groupby("member_id").size()
    decayed, _ = decayed_activity(data["activity"], as_of)
    terms = engagement_signal_terms(decayed, dbt_vars()["signal_weights"], active_roles, led)
    contributions = engagement_contributions(engagement, dbt_vars()["mode_weights"])
    return engagement_reasons(contributions, terms).assign(
        engagement_raw=engagement.set_index("member_id").engagement_raw.reindex(contributions.index).to_numpy())


def score_reasons(data: dict[str, pd.DataFrame], saved: dict, seed: int) -> pd.DataFrame:
    propensity = data["propensity"]
    as_of = pd.Timestamp(propensity.as_of.max()).date()
    features = point_in_time_features(data["activity"], data["dues"], data["members"], as_of - dt.timedelta(days=1))
    features = features[features.index.isin(data["scores"].member_id)]
    base, contributions, dues = dues_explanations(saved["model"], saved["columns"], features,
                                                  days_since_last(data["activity"], as_of), seed=seed)
    dues["dues_contributions"] = [json.dumps({k: round(float(v), 6) for k, v in row.items()})
                                  for row in contributions.to_dict(orient="records")]
    out = dues.merge(propensity[["member_id", "dues_propensity", "model_version"]], on="member_id", how="left")
    out = out.merge(engagement_explained(data), on="member_id", how="left")
    return out.assign(as_of=as_of)


@dg.asset(
    key=REASONS,
    group_name="scoring",
    kinds={"python", "duckdb"},
    deps=[MODEL, SCORES, *MARTS],
    pool=WAREHOUSE_POOL,
    tags={"workbench": "", "reasons": ""},
    description="Why each current member's scores are what they are. Dues propensity: the top 3 reasons in plain "
    "words ('paid the last 3 years', 'no email click in 9 months') with their contribution in points; "
    "contributions are Shapley values over feature groups that add up exactly to the score minus the base "
    "(dues_base). Engagement: the mode and signal that contribute most.",
)
def member_score_reasons(context: dg.AssetExecutionContext, warehouse: WarehouseResource, scoring: ScoringResource):
    data = _read(warehouse)
    version = str(data["propensity"].model_version.iloc[0]) if len(data["propensity"]) else ""
    with threadpool_limits(limits=scoring.predict_threads):  # many small predictions: threads only contend
        reasons = score_reasons(data, model_of_version(scoring.model_dir, version), scoring.seed)
    with warehouse.write() as conn:
        conn.execute("create schema if not exists scoring")
        conn.register("new_reasons", reasons)
        conn.execute(f"create or replace table {REASONS_TABLE} as select * from new_reasons")
    top = reasons.dues_reason_1_group.value_counts() if len(reasons) else pd.Series(dtype=int)
    context.log.info(f"reasons for {len(reasons)} members")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(reasons),
        "dues_base": float(reasons.dues_base.iloc[0]) if len(reasons) else float("nan"),
        "top_dues_reason_groups": dg.MetadataValue.md(top.rename("members").to_frame().to_markdown()),
        "top_engagement_modes": dg.MetadataValue.md(
            reasons.engagement_top_mode.value_counts().rename("members").to_frame().to_markdown()),
    })
