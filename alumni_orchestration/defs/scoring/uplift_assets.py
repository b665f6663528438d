"""The dues-reminder uplift model and every current member's predicted uplift (schema `scoring`).

Trained on the randomised arms (holdout and exploration) of the dues campaigns' complete cycles, from the
campaign_member_outcomes mart; refitted only when that training data changes (a cycle's outcomes complete),
else the saved model of the same data hash is reused. Its scores feed the uplift targeting policies.
"""

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
from dagster_dbt import get_asset_key_for_model

from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.defs.dbt.assets import dbt_models
from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.partitions import run_as_of
from alumni_orchestration.scoring.features import (
    cycle_cutoff,
    feature_columns,
    point_in_time_features,
)
from alumni_orchestration.scoring.plots import markdown_image
from alumni_orchestration.scoring.uplift import (
    LABEL_COLUMNS,
    MODEL_NAME,
    WEIGHT,
    fit_uplift_model,
    qini_plot_png,
    randomised_rows,
)
from alumni_orchestration.warehouse import WAREHOUSE_POOL, table_exists

SCHEMA = "scoring"
UPLIFT_MODEL = dg.AssetKey([SCHEMA, "dues_uplift_model"])
UPLIFT_SCORES = dg.AssetKey([SCHEMA, "member_uplift_scores"])
SCORES_TABLE = f"{SCHEMA}.member_uplift_scores"
PROPENSITY_MODEL = dg.AssetKey([SCHEMA, "dues_propensity_model"])
AUDIENCE_TABLE = "campaigns.campaign_audience"
EXPECTED_EFFECTS_FILE = "expected_effects.csv"  # written by harness/uplift_sim.py on a simulated association
MEMBERS_QUERY = ("select member_id, birth_date, graduation_year, joined_on, left_on, consent_email, consent_newsletter, "
                 "email_status from staging.stg_membership__members")


def dues_campaigns():
    return [c for c in campaigns().values() if c.kind.numbered_steps and c.outcome == "dues_paid"]


def _training_outcomes(conn, campaign_ids: list[str]) -> pd.DataFrame:
    """First messages of the dues campaigns with their arm, stratum, outcome and the propensity at the wave."""
    if not (table_exists(conn, "marts.campaign_member_outcomes") and table_exists(conn, AUDIENCE_TABLE)):
        return pd.DataFrame()
    return conn.execute(f"""
        select o.campaign_id, o.member_id, o.as_of, o.step, o.arm, o.stratum, o.days_to_dues_paid,
               try_cast(left(o.cycle, 4) as integer) as dues_year, a.score
        from marts.campaign_member_outcomes as o
        join {AUDIENCE_TABLE} as a using (campaign_id, member_id, as_of)
        where o.campaign_id in (select unnest(?)) and o.step = 1
    """, [campaign_ids]).df()


def _features(activity, dues, members, cutoff: dt.date, propensity: pd.Series) -> pd.DataFrame:
    features = point_in_time_features(activity, dues, members, cutoff)
    return features.assign(dues_propensity=propensity.reindex(features.index).to_numpy())


def _training_data(rows: pd.DataFrame, activity, dues, members) -> tuple[pd.DataFrame, list[str]]:
    """Each randomised member with the point-in-time features at their cycle's cutoff, and the propensity the
    wave saw (already in `rows`)."""
    frames = [group.merge(point_in_time_features(activity, dues, members, cycle_cutoff(int(cycle))),
                          left_on="member_id", right_index=True, how="inner")
              for cycle, group in rows.groupby("cycle")]
    data = pd.concat(frames, ignore_index=True)
    labels = [c for c in (*LABEL_COLUMNS, WEIGHT) if c in data]
    columns = feature_columns(data.drop(columns=[*labels, "as_of"]))
    return data[[*labels, *columns]], columns


def _oracle(truth_dir: str) -> pd.Series | None:
    """Synthetic associations only, a yardstick: each member's true expected reminder effect per dues year."""
    path = Path(truth_dir) / EXPECTED_EFFECTS_FILE if truth_dir else None
    if path is None or not path.is_file():
        return None
    effects = pd.read_csv(path)
    return effects.set_index(["member_id", "dues_year"]).expected_effect


def _save_or_reuse(model_dir: Path, data, columns, seed, oracle, as_of, log):
    from alumni_orchestration.scoring.uplift import training_hash

    digest = training_hash(data, columns)
    for path in sorted(model_dir.glob(f"*-{digest[:12]}.joblib")):
        saved = joblib.load(path)
        if saved.get("data_hash") == digest and saved.get("seed") == seed:
            log(f"training data unchanged since uplift model {saved['version']}: reusing it")
            return saved, False
    model, report = fit_uplift_model(data, columns, seed=seed, oracle=oracle)
    saved = {"model": model, "columns": columns, "version": f"{as_of.isoformat()}-{report.data_hash[:12]}",
             "data_hash": report.data_hash, "seed": seed, "report": report, "chosen": report.chosen}
    joblib.dump(saved, model_dir / f"{saved['version']}.joblib")
    return saved, True


@dg.multi_asset(
    specs=[dg.AssetSpec(UPLIFT_MODEL, group_name="scoring", kinds={"scikitlearn", "duckdb"},
                        deps=[get_asset_key_for_model([dbt_models], "campaign_member_outcomes"), PROPENSITY_MODEL,
                              dg.AssetKey(["campaigns", "campaign_audience"])],
                        description="Who a dues reminder moves: S-, two-model, X- and transformed-outcome learners "
                        "on the randomised arms of complete cycles, chosen by Qini over out-of-cycle predictions "
                        "(the most constrained within one standard error of the best); saved with its "
                        "version and data hash; qini, auuc (and on a simulated association oracle_qini and the "
                        "Spearman correlation with the true effect) in scoring.model_metrics."),
           dg.AssetSpec(UPLIFT_SCORES, group_name="scoring", kinds={"scikitlearn", "duckdb"}, deps=[UPLIFT_MODEL],
                        description="Every scored member's predicted uplift of a dues reminder, per day: what the "
                        "uplift targeting policies rank on.")],
    pool=WAREHOUSE_POOL,
)
def dues_uplift_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource, scoring: ScoringResource):
    as_of = run_as_of(context)
    campaign_list = dues_campaigns()
    with warehouse.read() as conn:
        outcomes = _training_outcomes(conn, [c.campaign_id for c in campaign_list])
        activity = conn.execute("select member_id, activity_date, signal, activity_count, amount_eur "
                                "from marts.member_activity_daily").df()
        dues = conn.execute("select member_id, dues_year, paid, tier, first_paid_on from marts.dues_history").df()
        members = conn.execute(MEMBERS_QUERY).df()
        propensity = conn.execute("select member_id, dues_propensity from scoring.dues_propensity").df() \
            if table_exists(conn, "scoring.dues_propensity") else pd.DataFrame(columns=["member_id", "dues_propensity"])
    holdout = campaign_list[0].holdout_share if campaign_list else 0.1
    exploration = campaign_list[0].targeting.exploration_share if campaign_list else None
    rows = randomised_rows(outcomes, holdout, as_of.year, exploration) if len(outcomes) else pd.DataFrame()
    if rows.empty or rows.treated.nunique() < 2 or len(rows) < 200:
        context.log.info(f"uplift model: {len(rows)} randomised members of complete cycles; at least 200 in both arms "
                         "are needed. Nothing fitted; the uplift policies fall back on propensity.")
        yield dg.MaterializeResult(asset_key=UPLIFT_MODEL, metadata={"status": "not enough randomised data",
                                                                     "randomised_rows": len(rows)})
        yield dg.MaterializeResult(asset_key=UPLIFT_SCORES, metadata={"dagster/row_count": 0})
        return
    data, columns = _training_data(rows, activity, dues, members)
    model_dir = Path(scoring.model_dir) / "dues_uplift"
    model_dir.mkdir(parents=True, exist_ok=True)
    saved, refitted = _save_or_reuse(model_dir, data, columns, scoring.seed,
                                     _oracle(os.environ.get("ALUMNI_SIMULATED_TRUTH_DIR", "")), as_of, context.log.info)
    report, version = saved["report"], saved["version"]

    current = _features(activity, dues, members, as_of - dt.timedelta(days=1),
                        propensity.set_index("member_id").dues_propensity)
    current = current[current.lifetime_member == 0].dropna(subset=["dues_propensity"])
    scored = pd.DataFrame({"member_id": current.index, "as_of": as_of, "model_version": version,
                           "predicted_uplift": saved["model"].predict(current[saved["columns"]].to_numpy(float))})
    metrics = report.metrics.assign(as_of=as_of, model_version=version, validation_cycle=None)
    _write(warehouse, as_of, scored, metrics)
    value = dict(zip(metrics[metrics.model == MODEL_NAME].metric, metrics[metrics.model == MODEL_NAME].value,
                     strict=True))
    plot = markdown_image(qini_plot_png(report.curves, f"Qini curves, held out: {report.validation}"), "qini")
    context.log.info(f"uplift model {version}: chose {report.chosen}, held-out Qini {value['qini']:.4f}")
    yield dg.MaterializeResult(asset_key=UPLIFT_MODEL, metadata={
        "model_version": version, "refitted": refitted, "data_hash": report.data_hash, "chosen_model": report.chosen,
        "selection_qini": dg.MetadataValue.json(report.selection_qini),
        "selection_qini_se": dg.MetadataValue.json(getattr(report, "selection_se", {})), "validation": report.validation,
        "training_cycles": dg.MetadataValue.json(sorted(int(c) for c in data.cycle.unique())),
        "randomised_rows": len(data), **{k: float(v) for k, v in value.items()},
        "qini_curves": dg.MetadataValue.md(plot)})
    yield dg.MaterializeResult(asset_key=UPLIFT_SCORES, metadata={
        "dagster/row_count": len(scored), "model_version": version,
        "mean_predicted_uplift": float(np.mean(scored.predicted_uplift)) if len(scored) else 0.0})


def _write(warehouse: WarehouseResource, as_of: dt.date, scored: pd.DataFrame, metrics: pd.DataFrame) -> None:
    with warehouse.write() as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(f"""create table if not exists {SCHEMA}.model_metrics (model varchar, metric varchar, value double,
                         segment varchar, as_of date, model_version varchar, validation_cycle integer)""")
        conn.execute(f"""create table if not exists {SCORES_TABLE} (member_id integer, as_of date,
                         predicted_uplift double, model_version varchar)""")
        conn.execute("begin transaction")
        conn.execute(f"delete from {SCHEMA}.model_metrics where as_of = ? and model in (select unnest(?))",
                     [as_of, sorted(set(metrics.model))])
        conn.register("uplift_metrics", metrics)
        conn.execute(f"insert into {SCHEMA}.model_metrics by name select * from uplift_metrics")
        conn.execute(f"delete from {SCORES_TABLE} where as_of = ?", [as_of])
        conn.register("uplift_scores", scored)
        conn.execute(f"insert into {SCORES_TABLE} by name select * from uplift_scores")
        conn.execute("commit")
