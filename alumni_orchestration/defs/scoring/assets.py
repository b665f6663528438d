"""Scores: the dues propensity model and every current member's scores (schema `scoring`)."""

import datetime as dt
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.defs.workbench.trends import score_trend_metadata
from alumni_orchestration.partitions import daily_partitions, run_as_of
from alumni_orchestration.scoring.dues_model import fit_dues_model, require_two_cycles, training_data_hash
from alumni_orchestration.scoring.features import complete_cycles, point_in_time_features, training_set
from alumni_orchestration.scoring.history import ACTIVITY_COLUMNS, HISTORY_COLUMNS, score_history
from alumni_orchestration.scoring.plots import distribution_by_segment_png, markdown_image
from alumni_orchestration.warehouse import WAREHOUSE_POOL

SCHEMA = "scoring"
MODEL = dg.AssetKey([SCHEMA, "dues_propensity_model"])
SCORES = dg.AssetKey([SCHEMA, "member_scores"])
HISTORY = dg.AssetKey([SCHEMA, "member_score_history"])
MARTS = [dg.AssetKey(["marts", name]) for name in
         ("member_activity_daily", "dues_history", "member_profile", "member_engagement", "member_interests")]
MEMBERS_STAGING = dg.AssetKey(["staging", "stg_membership__members"])
AMBASSADOR_SHARE = 0.16
CURRENT = ("active", "lapsed")


MEMBERS_QUERY = ("select member_id, birth_date, graduation_year, joined_on, left_on, consent_email, consent_newsletter, "
                 "email_status from staging.stg_membership__members")


def _inputs(warehouse: WarehouseResource) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with warehouse.read() as conn:
        activity = conn.execute(f"select {', '.join(ACTIVITY_COLUMNS)} from marts.member_activity_daily").df()
        dues = conn.execute("select member_id, dues_year, paid, tier, first_paid_on, lifetime_covered "
                            "from marts.dues_history").df()
        members = conn.execute(MEMBERS_QUERY).df()
    return activity, dues, members


def _oracle(ground_truth_dir: str) -> pd.Series | None:
    path = Path(ground_truth_dir) / "dues_probabilities.csv" if ground_truth_dir else None
    if not path or not path.exists():
        return None
    return pd.read_csv(path).set_index(["member_id", "dues_year"]).p_pay


def saved_model_for(model_dir: Path, data_hash: str, seed: int) -> dict | None:
    """A model already fitted on exactly this training data with this seed, if one was saved."""
    for path in sorted(model_dir.glob(f"*-{data_hash[:12]}.joblib")):
        saved = joblib.load(path)
        if saved.get("data_hash") == data_hash and saved.get("seed") == seed and saved.get("report") is not None:
            return saved
    return None


def _md(frame: pd.DataFrame, digits: int = 3) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.round(digits).to_markdown(index=False))


@dg.asset(
    key=MODEL,
    group_name="scoring",
    kinds={"scikitlearn", "duckdb"},
    deps=[*MARTS[:3], MEMBERS_STAGING],
    pool=WAREHOUSE_POOL,
    description="Propensity to pay the next dues cycle: point-in-time features, time-based validation, gradient "
    "boosting vs logistic regression vs the 'paid last year' heuristic, calibrated. Writes scoring.model_metrics "
    "and scoring.dues_propensity; saves the model with its version and data hash.",
    check_specs=[dg.AssetCheckSpec("beats_paid_last_year_heuristic", asset=MODEL, blocking=True,
                                   description="Validation AUC and Brier score both better than the heuristic's.")],
)
def dues_propensity_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource, scoring: ScoringResource):
    as_of = run_as_of(context)
    activity, dues, members = _inputs(warehouse)
    cycles = complete_cycles(activity, as_of)
    data = training_set(activity, dues, members, cycles)
    model_dir = Path(scoring.model_dir) / "dues_propensity"
    model_dir.mkdir(parents=True, exist_ok=True)
    require_two_cycles(data)  # a plain sentence when the history is too short, before anything else
    # The training set changes when a dues cycle completes, not every night: refit only then.
    saved = saved_model_for(model_dir, training_data_hash(data), scoring.seed)
    if saved:
        model, columns, report, version = saved["model"], saved["columns"], saved["report"], saved["version"]
        context.log.info(f"training data unchanged since model {version}: reusing it")
    else:
        model, columns, report = fit_dues_model(data, seed=scoring.seed, oracle=_oracle(scoring.ground_truth_dir))
        version = f"{as_of.isoformat()}-{report.data_hash[:12]}"
        joblib.dump({"model": model, "columns": columns, "version": version, "data_hash": report.data_hash,
                     "chosen": report.chosen, "cycles": [int(c) for c in cycles], "seed": scoring.seed,
                     "report": report}, model_dir / f"{version}.joblib")

    next_cycle = as_of.year + 1
    features = point_in_time_features(activity, dues, members, as_of - dt.timedelta(days=1))
    scored = pd.DataFrame({"member_id": features.index, "as_of": as_of, "dues_cycle": next_cycle,
                           "dues_propensity": model.predict_proba(features[columns].to_numpy(dtype=float))[:, 1],
                           "lifetime_member": features.lifetime_member.astype(bool).to_numpy(),
                           "model_version": version})
    scored.loc[scored.lifetime_member, "dues_propensity"] = 1.0
    metrics = report.metrics.assign(as_of=as_of, model_version=version, validation_cycle=report.validation_cycle)
    with warehouse.write() as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.execute(f"""create table if not exists {SCHEMA}.model_metrics (model varchar, metric varchar, value double,
                         segment varchar, as_of date, model_version varchar, validation_cycle integer)""")
        conn.execute("begin transaction")
        # Only this asset's models: the uplift model writes its own rows into the same table.
        conn.execute(f"delete from {SCHEMA}.model_metrics where as_of = ? and model in (select unnest(?))",
                     [as_of, sorted(metrics.model.unique())])
        conn.register("new_metrics", metrics)
        conn.execute(f"insert into {SCHEMA}.model_metrics by name select * from new_metrics")
        conn.register("new_scores", scored)
        conn.execute(f"create or replace table {SCHEMA}.dues_propensity as select * from new_scores")
        conn.execute("commit")

    overall = report.metrics[(report.metrics.segment == "all") & (report.metrics.model == "dues_propensity")]
    value = dict(zip(overall.metric, overall.value, strict=True))
    segments = report.validation_predictions.rename(columns={"p": "dues_propensity"})
    plot = markdown_image(distribution_by_segment_png(segments, "dues_propensity",
                                                      f"Validation cycle {report.validation_cycle}"), "distribution")
    context.log.info(f"dues model {version}: chose {report.chosen}, validation AUC {value['roc_auc']:.3f} "
                     f"(heuristic {value['baseline_roc_auc']:.3f})")
    yield dg.MaterializeResult(metadata={
        "model_version": version,
        "refitted": saved is None,
        "data_hash": report.data_hash,
        "chosen_model": report.chosen,
        "selection_auc": dg.MetadataValue.json(report.selection_auc),
        "calibration_method": report.calibration_method,
        "training_cycles": dg.MetadataValue.json([int(c) for c in cycles]),
        "validation_cycle": report.validation_cycle,
        "roc_auc": float(value["roc_auc"]),
        "baseline_roc_auc": float(value["baseline_roc_auc"]),
        "oracle_roc_auc": float(value.get("oracle_roc_auc", float("nan"))),
        "brier": float(value["brier"]),
        "ece": float(value["ece"]),
        "metrics": _md(report.metrics.pivot_table(index=["model", "segment"], columns="metric", values="value").reset_index()),
        "calibration": _md(report.calibration_table),
        "lift": _md(report.lift_table),
        "permutation_importances": _md(report.importances.head(15), 4),
        "score_distribution_by_segment": dg.MetadataValue.md(plot),
        "dagster/row_count": len(scored),
    })
    yield dg.AssetCheckResult(
        check_name="beats_paid_last_year_heuristic",
        passed=bool(value["roc_auc"] > value["baseline_roc_auc"] and value["brier"] < value["baseline_brier"]),
        metadata={"roc_auc": float(value["roc_auc"]), "baseline_roc_auc": float(value["baseline_roc_auc"]),
                  "brier": float(value["brier"]), "baseline_brier": float(value["baseline_brier"])},
    )


def ambassadors(scores: pd.DataFrame, share: float = AMBASSADOR_SHARE) -> pd.Series:
    """The most engaged ~16% of current members, among those active in at least two modes."""
    threshold = scores.engagement_score.quantile(1 - share)
    return (scores.engagement_score >= threshold) & (scores.active_modes >= 2)


TOP_INTERESTS = 3
# Each member's top k rows in top_interests' order (affinity descending, then topic; a missing affinity last, as
# pandas sorts it), ranked by DuckDB: pandas then sorts 3 rows a member, not the mart's every topic.
TOP_INTERESTS_QUERY = """select member_id, topic, affinity from (
    select member_id, topic, affinity, row_number() over (partition by member_id
        order by (affinity is null or isnan(affinity)), affinity desc, topic) as interest_rank
    from marts.member_interests) where interest_rank <= ? order by member_id, interest_rank"""


def top_interests(interests: pd.DataFrame, k: int = TOP_INTERESTS) -> pd.Series:
    """Each member's top k topics as JSON [{topic, affinity}], built column-wise (no Python loop per member)."""
    ranked = interests.sort_values(["member_id", "affinity", "topic"], ascending=[True, False, True])
    top = ranked.groupby("member_id").head(k)
    items = ('{"topic": "' + top.topic.astype(str) + '", "affinity": '
             + top.affinity.astype(float).round(4).astype(str) + "}")
    wide = pd.DataFrame({"member_id": top.member_id.to_numpy(), "rank": top.groupby("member_id").cumcount().to_numpy(),
                         "item": items.to_numpy()}).pivot(index="member_id", columns="rank", values="item")
    joined = wide[0]
    for rank in wide.columns[1:]:
        joined = joined + (", " + wide[rank]).fillna("")
    return "[" + joined + "]"


@dg.asset(
    key=SCORES,
    group_name="scoring",
    kinds={"python", "duckdb"},
    deps=[MODEL, HISTORY, *MARTS[2:]],
    pool=WAREHOUSE_POOL,
    description="One row per current member: dues propensity and percentile, engagement score (the mart's "
    "documented weighting, 0-100), percentile and 30-day trend, top 3 interests, ambassador and volunteer flags.",
)
def member_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    with warehouse.read() as conn:
        profile = conn.execute("select member_id, segment, status from marts.member_profile").df()
        engagement = conn.execute("select member_id, as_of, engagement_index, active_modes, communication, experiential, "
                                  "volunteer from marts.member_engagement").df()
        interests = conn.execute(TOP_INTERESTS_QUERY, [TOP_INTERESTS]).df()
        propensity = conn.execute("select member_id, dues_propensity from scoring.dues_propensity").df()
        scores = profile[profile.status.isin(CURRENT)].merge(engagement, on="member_id").merge(
            propensity, on="member_id", how="left")
        as_of = pd.to_datetime(scores.as_of).dt.date.max() if len(scores) else dt.date.today()
        # The one snapshot the trend needs, not the whole history (120 days of every member at 1M: 84M rows).
        earlier = conn.execute("select member_id, engagement_score from scoring.member_score_history where as_of = ?",
                               [as_of - dt.timedelta(days=30)]).df() \
            if conn.execute("select count(*) from information_schema.tables where table_schema = 'scoring' "
                            "and table_name = 'member_score_history'").fetchone()[0] else None
    scores["engagement_score"] = scores.engagement_index.round(2)
    scores["engagement_percentile"] = scores.engagement_score.rank(pct=True).round(4)
    scores["dues_propensity_percentile"] = scores.dues_propensity.rank(pct=True).round(4)
    if earlier is not None and len(earlier):
        scores = scores.merge(earlier.rename(columns={"engagement_score": "score_30d_ago"}), on="member_id", how="left")
    else:
        scores["score_30d_ago"] = np.nan
    scores["engagement_trend"] = scores.engagement_score - scores.score_30d_ago
    scores["top_interests"] = scores.member_id.map(top_interests(interests))
    scores["is_ambassador"] = ambassadors(scores)
    high = (scores.experiential.rank(pct=True) >= 0.75) & (scores.communication.rank(pct=True) >= 0.75)
    scores["volunteer_candidate"] = high & (scores.volunteer == 0)
    out = scores[["member_id", "as_of", "segment", "dues_propensity", "dues_propensity_percentile", "engagement_score",
                  "engagement_percentile", "engagement_trend", "top_interests", "is_ambassador", "volunteer_candidate",
                  "active_modes"]]
    with warehouse.write() as conn:
        conn.execute(f"create schema if not exists {SCHEMA}")
        conn.register("new_scores", out)
        conn.execute(f"create or replace table {SCHEMA}.member_scores as select * from new_scores")
    by_segment = out.groupby("segment").agg(members=("member_id", "size"), ambassadors=("is_ambassador", "sum"),
                                            mean_engagement=("engagement_score", "mean"),
                                            mean_dues_propensity=("dues_propensity", "mean")).reset_index()
    plot = markdown_image(distribution_by_segment_png(out, "engagement_score", "Engagement score by segment"), "engagement")
    context.log.info(f"scored {len(out)} current members; {int(out.is_ambassador.sum())} ambassadors")
    return dg.MaterializeResult(metadata={
        **score_trend_metadata(warehouse, out),
        "dagster/row_count": len(out),
        "as_of": str(as_of),
        "ambassadors": int(out.is_ambassador.sum()),
        "ambassador_share": float(out.is_ambassador.mean()) if len(out) else 0.0,
        "volunteer_candidates": int(out.volunteer_candidate.sum()),
        "by_segment": _md(by_segment),
        "engagement_by_segment": dg.MetadataValue.md(plot),
    })


def latest_model(model_dir: str) -> dict:
    saved = sorted((Path(model_dir) / "dues_propensity").glob("*.joblib"), key=lambda p: p.stat().st_mtime)
    if not saved:
        raise FileNotFoundError("No dues propensity model has been saved yet: materialise "
                                "scoring/dues_propensity_model first.")
    return joblib.load(saved[-1])


@dg.asset(
    key=HISTORY,
    group_name="scoring",
    kinds={"scikitlearn", "duckdb"},
    deps=[MODEL, *MARTS, MEMBERS_STAGING, dg.AssetKey(["staging", "stg_membership__volunteer_roles"]),
          dg.AssetKey(["staging", "stg_membership__group_memberships"])],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    description="The score snapshot of each day (as of the next morning): engagement recomputed as of that day, "
    "dues propensity from the latest model on that day's point-in-time features, and dues standing. The campaign "
    "sensors compare consecutive snapshots; backfills rebuild them.",
)
def member_score_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource, scoring: ScoringResource):
    days = [dt.date.fromisoformat(key) for key in context.partition_keys]
    horizon = days[-1] - dt.timedelta(days=scoring.history_days)
    computed = [day for day in days if day > horizon]
    saved = latest_model(scoring.model_dir)
    as_ofs = [day + dt.timedelta(days=1) for day in computed]
    current_ids = f"select member_id from marts.member_profile where status in {CURRENT}"
    with warehouse.read() as conn:
        # Only what the snapshots use: current members' activity up to the last day, their paid dues.
        activity = conn.execute(f"select {', '.join(ACTIVITY_COLUMNS)} from marts.member_activity_daily "
                                f"where activity_date <= ? and member_id in ({current_ids})",
                                [max(as_ofs, default=dt.date.min)]).df()
        dues = conn.execute("select member_id, dues_year, paid, tier, first_paid_on from marts.dues_history "
                            f"where paid and member_id in ({current_ids})").df()
        members = conn.execute(MEMBERS_QUERY).df()
        roles = conn.execute("select member_id, started_on, ended_on from staging.stg_membership__volunteer_roles").df()
        memberships = conn.execute("select member_id, is_leader, left_on from staging.stg_membership__group_memberships").df()
        current = conn.execute("select member_id, segment, consent_newsletter, email_status from marts.member_profile "
                               f"where status in {CURRENT}").df()
    snapshots = score_history(activity, roles, memberships, current, dues, members, computed, saved["model"],
                              saved["columns"], saved["version"])
    rows = 0
    with warehouse.staging_dir(".score-history-") as spill:
        # One day at a time to Parquet, then into the warehouse in one transaction: memory holds one day, and
        # the warehouse is locked for the insert only.
        with threadpool_limits(limits=scoring.predict_threads):
            for i, snapshot in enumerate(snapshots):
                snapshot.to_parquet(spill / f"{i:05d}.parquet", index=False)
                rows += len(snapshot)
        with warehouse.write() as conn:
            conn.execute(f"create schema if not exists {SCHEMA}")
            conn.execute(f"""create table if not exists {SCHEMA}.member_score_history (member_id integer, as_of date,
                segment varchar, engagement_score double, engagement_percentile double, dues_propensity double,
                paid_current_cycle boolean, model_version varchar)""")
            conn.execute("begin transaction")
            conn.execute(f"delete from {SCHEMA}.member_score_history where as_of in (select unnest(?))", [as_ofs])
            if computed:
                conn.execute(f"insert into {SCHEMA}.member_score_history by name "
                             f"select {', '.join(HISTORY_COLUMNS)} from read_parquet(?)", [str(spill / "*.parquet")])
            conn.execute("commit")
    skipped = len(days) - len(computed)
    context.log.info(f"score history: {len(computed)} days computed, {skipped} older than the {scoring.history_days}-day "
                     "horizon left as they were")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows, "days_computed": len(computed),
        "days_outside_horizon": skipped, "horizon_days": scoring.history_days,
        "window": f"{days[0]} .. {days[-1]} (as of the next morning)", "model_version": saved["version"],
    })
