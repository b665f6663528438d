"""scoring.member_score_reasons: why each current member's scores are what they are (see scoring/explain.py).

Incremental and bounded: members are read and explained a chunk at a time (activity within the features'
window only, the last-seen days and decayed signals aggregated in DuckDB); a member whose input hash and the
explain version (model, background rows, seed) are unchanged keeps its stored dues reasons."""

import datetime as dt
import json
import math
import time
from pathlib import Path

import dagster as dg
import duckdb
import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from alumni_orchestration.defs.scoring.assets import MARTS, MEMBERS_QUERY, MODEL, SCORES, latest_model
from alumni_orchestration.defs.scoring.resources import ScoringResource
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.scoring.engagement import dbt_vars
from alumni_orchestration.scoring.explain import (
    background_members,
    dues_explanations,
    engagement_contributions,
    engagement_reasons,
    engagement_signal_terms,
    explain_version,
    input_hashes,
    needs_explaining,
)
from alumni_orchestration.scoring.features import SIGNALS, WINDOW_DAYS, point_in_time_features
from alumni_orchestration.scoring.history import ACTIVITY_COLUMNS
from alumni_orchestration.warehouse import WAREHOUSE_POOL

REASONS = dg.AssetKey(["scoring", "member_score_reasons"])
REASONS_TABLE = "scoring.member_score_reasons"
DUES_COLUMNS = ["member_id", "dues_base", *[f"dues_reason_{r}{s}" for r in (1, 2, 3) for s in ("", "_group", "_points")],
                "dues_reasons", "dues_contributions", "dues_input_hash", "dues_explain_version"]


class ReasonsConfig(dg.Config):
    chunk_size: int = 20_000  # members read and explained at a time (memory ~ chunk x background predictions)
    background_size: int = 8


def model_of_version(model_dir: str, version: str) -> dict:
    """The saved model that scored scoring.dues_propensity (its version), else the latest one."""
    path = Path(model_dir) / "dues_propensity" / f"{version}.joblib"
    return joblib.load(path) if path.is_file() else latest_model(model_dir)


def _member_inputs(conn: duckdb.DuckDBPyConnection, ids: np.ndarray, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """The inputs of the members `ids` only; activity within the features' window, last seen in SQL. Rows in a
    fixed order: a member's float sums (so its input hash) must not depend on the scan order or the chunk."""
    conn.register("chunk_ids", pd.DataFrame({"member_id": ids}))
    cutoff = as_of - dt.timedelta(days=1)
    among = "member_id in (select member_id from chunk_ids)"
    data = {
        "activity": conn.execute(f"select {', '.join(ACTIVITY_COLUMNS)} from marts.member_activity_daily "
                                 f"where {among} and activity_date <= ? and activity_date > ? "
                                 "order by member_id, signal, activity_date, activity_count, amount_eur",
                                 [cutoff, cutoff - dt.timedelta(days=WINDOW_DAYS)]).df(),
        "dues": conn.execute("select member_id, dues_year, paid, tier, first_paid_on, lifetime_covered "
                             f"from marts.dues_history where {among} order by member_id, dues_year").df(),
        "members": conn.execute(f"select * from ({MEMBERS_QUERY}) where {among} order by member_id").df(),
        "last_seen": conn.execute("select member_id, signal, datediff('day', max(activity_date), ?::date) as days "
                                  f"from marts.member_activity_daily where {among} and activity_date <= ? "
                                  "group by all", [as_of, as_of]).df(),
    }
    data["features"] = point_in_time_features(data["activity"], data["dues"], data["members"], cutoff)
    data["last_seen"] = (data["last_seen"].pivot(index="member_id", columns="signal", values="days")
                         .reindex(index=data["features"].index, columns=list(SIGNALS)).astype(float))
    return data


def _decayed(conn: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """scoring.engagement.decayed_activity's decayed sums for the members in chunk_ids, in SQL."""
    halves = ", ".join(f"('{signal}', {float(days)})" for signal, days in dbt_vars()["half_life_days"].items())
    long = conn.execute(
        "select member_id, signal, sum(case when signal = 'donations' then amount_eur / 50.0 else activity_count end"
        " * exp(-ln(2) * datediff('day', activity_date, ?::date) / h.half)) as value "
        f"from marts.member_activity_daily join (values {halves}) h(sig, half) on signal = h.sig "
        "where member_id in (select member_id from chunk_ids) and activity_date <= ? group by all",
        [as_of, as_of]).df()
    return long.pivot(index="member_id", columns="signal", values="value").fillna(0.0)


def _engagement(conn: duckdb.DuckDBPyConnection, ids: np.ndarray, as_of: dt.date,
                contributions: pd.DataFrame) -> pd.DataFrame:
    cut = pd.Timestamp(as_of)
    among = "member_id in (select member_id from chunk_ids)"
    roles = conn.execute(f"select member_id, started_on, ended_on from staging.stg_membership__volunteer_roles "
                         f"where {among}").df()
    memberships = conn.execute(f"select member_id, is_leader, left_on from staging.stg_membership__group_memberships"
                               f" where {among}").df()
    started, ended = pd.to_datetime(roles.started_on), pd.to_datetime(roles.ended_on)
    active_roles = roles[(started <= cut) & (ended.isna() | (ended >= cut))].groupby("member_id").size()
    left = pd.to_datetime(memberships.left_on)
    led = memberships[memberships.is_leader & (left.isna() | (left >= cut))].groupby("member_id").size()
    terms = engagement_signal_terms(_decayed(conn, as_of), dbt_vars()["signal_weights"], active_roles, led)
    return engagement_reasons(contributions.loc[contributions.index.intersection(ids)], terms)


def _stored(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(conn.execute("select count(*) from information_schema.columns where table_schema = 'scoring' and "
                             "table_name = 'member_score_reasons' and column_name = 'dues_explain_version'")
                .fetchone()[0])


def _dues_chunk(conn, inputs: dict, saved: dict, background: np.ndarray, version: str, seed: int) -> tuple:
    """(dues rows of the chunk, explained, reused): stored rows where nothing changed, fresh ones elsewhere."""
    features, last_seen = inputs["features"], inputs["last_seen"]
    hashes = input_hashes(features[saved["columns"]].to_numpy(dtype=float), last_seen, SIGNALS)
    stored = conn.execute(f"select {', '.join(DUES_COLUMNS)} from {REASONS_TABLE} "
                          "where member_id in (select member_id from chunk_ids)").df() if _stored(conn) else (
        pd.DataFrame(columns=DUES_COLUMNS))
    todo = needs_explaining(hashes, version, stored, features.index)
    parts = [stored[stored.member_id.isin(features.index[~todo])]]
    if todo.any():
        _, contributions, fresh = dues_explanations(saved["model"], saved["columns"], features[todo], background,
                                                    last_seen[todo], seed=seed)
        fresh["dues_contributions"] = [json.dumps({k: round(float(v), 6) for k, v in row.items()})
                                       for row in contributions.to_dict(orient="records")]
        fresh["dues_input_hash"], fresh["dues_explain_version"] = hashes[todo], version
        parts.append(fresh[DUES_COLUMNS])
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else (
        pd.DataFrame(columns=DUES_COLUMNS))
    return rows.sort_values("member_id", ignore_index=True), int(todo.sum()), int((~todo).sum())


def _explain_into(spill: Path, conn: duckdb.DuckDBPyConnection, saved: dict, seed: int,
                  config: ReasonsConfig) -> dict:
    """Explain chunk by chunk into Parquet files under spill. Returns the counts."""
    propensity = conn.execute("select member_id, as_of, dues_propensity, model_version "
                              "from scoring.dues_propensity").df()
    as_of = pd.Timestamp(propensity.as_of.max()).date()
    ids = np.sort(conn.execute("select member_id from scoring.member_scores").df().member_id.to_numpy())
    reference = _member_inputs(conn, background_members(ids, config.background_size, seed), as_of)["features"]
    background = reference[saved["columns"]].to_numpy(dtype=float)
    version = explain_version(str(saved.get("version", "")), background, seed)
    engagement = engagement_contributions(conn.execute("select * from marts.member_engagement").df(),
                                          dbt_vars()["mode_weights"])
    engagement_raw = conn.execute("select member_id, engagement_raw from marts.member_engagement").df()
    counts = {"explained": 0, "reused": 0, "rows": 0}
    for i in range(math.ceil(len(ids) / config.chunk_size)):
        chunk = ids[i * config.chunk_size:(i + 1) * config.chunk_size]
        inputs = _member_inputs(conn, chunk, as_of)
        dues, explained, reused = _dues_chunk(conn, inputs, saved, background, version, seed)
        out = dues.merge(propensity[["member_id", "dues_propensity", "model_version"]], on="member_id", how="left")
        out = out.merge(_engagement(conn, chunk, as_of, engagement), on="member_id", how="left")
        out = out.merge(engagement_raw, on="member_id", how="left").assign(as_of=as_of)
        out.to_parquet(spill / f"{i:05d}.parquet", index=False)
        counts = {"explained": counts["explained"] + explained, "reused": counts["reused"] + reused,
                  "rows": counts["rows"] + len(out)}
    return counts


def write_score_reasons(warehouse: WarehouseResource, saved: dict, seed: int, config: ReasonsConfig) -> dict:
    """Explain under a read connection, then replace the table in one short write. Returns counts."""
    with warehouse.staging_dir(".reasons-") as spill:
        with warehouse.read() as conn:
            counts = _explain_into(spill, conn, saved, seed, config)
        with warehouse.write() as writer:
            writer.execute("create schema if not exists scoring")
            if not counts["rows"]:
                writer.execute(f"create or replace table {REASONS_TABLE} (member_id bigint)")
                return {**counts, "top_groups": [], "top_modes": [], "base": None}
            writer.execute(f"create or replace table {REASONS_TABLE} as select * from "
                           f"read_parquet('{spill}/*.parquet', union_by_name = true) order by member_id")
            counts["top_groups"] = writer.execute(f"select dues_reason_1_group, count(*) from {REASONS_TABLE} "
                                                  "group by 1 order by 2 desc").fetchall()
            counts["top_modes"] = writer.execute(f"select engagement_top_mode, count(*) from {REASONS_TABLE} "
                                                 "group by 1 order by 2 desc").fetchall()
            counts["base"] = writer.execute(f"select any_value(dues_base) from {REASONS_TABLE}").fetchone()[0]
    return counts


def _table(pairs: list, name: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(pd.DataFrame(pairs, columns=[name, "members"]).to_markdown(index=False))


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
    "(dues_base). Engagement: the mode and signal that contribute most. Incremental: members whose inputs and "
    "the model are unchanged keep their stored dues reasons.",
)
def member_score_reasons(context: dg.AssetExecutionContext, warehouse: WarehouseResource, scoring: ScoringResource,
                         config: ReasonsConfig):
    started = time.monotonic()
    with warehouse.read() as conn:
        versions = conn.execute("select distinct model_version from scoring.dues_propensity limit 1").fetchall()
    saved = model_of_version(scoring.model_dir, str(versions[0][0]) if versions else "")
    with threadpool_limits(limits=scoring.predict_threads):  # many small predictions: threads only contend
        counts = write_score_reasons(warehouse, saved, scoring.seed, config)
    seconds = round(time.monotonic() - started, 1)
    context.log.info(f"reasons for {counts['rows']} members: {counts['explained']} explained, "
                     f"{counts['reused']} reused, {seconds} s")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": counts["rows"],
        "members_explained": counts["explained"],
        "members_reused": counts["reused"],
        "seconds": seconds,
        "dues_base": float(counts["base"]) if counts["base"] is not None else float("nan"),
        "top_dues_reason_groups": _table(counts["top_groups"], "dues_reason_1_group"),
        "top_engagement_modes": _table(counts["top_modes"], "engagement_top_mode"),
    })
