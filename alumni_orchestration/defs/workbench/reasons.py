"""scoring.member_score_reasons: why each current member's scores are what they are (see scoring/explain.py).

Incremental and bounded: members are read and explained a chunk at a time (activity within the features'
window only, the last-seen days and decayed signals aggregated in DuckDB); a member whose input hash and the
explain version (model, background rows, seed) are unchanged keeps its stored dues reasons. A run explains at
most `max_explained_per_run` members (the cost of a night stays bounded at any size): the never-explained
first, then the longest unrefreshed; the others keep their stored reasons, dated by dues_explained_on, with
dues_explained_score the score their contributions add up to, until a later night refreshes them. A member whose
inputs moved but whose score did not (within score_tolerance of dues_explained_score, for at most
max_reason_age_days) keeps them too: days since an activity and age move every night, scores seldom."""

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
    still_standing,
)
from alumni_orchestration.scoring.features import SIGNALS, WINDOW_DAYS, point_in_time_features
from alumni_orchestration.scoring.history import ACTIVITY_COLUMNS
from alumni_orchestration.warehouse import WAREHOUSE_POOL

REASONS = dg.AssetKey(["scoring", "member_score_reasons"])
REASONS_TABLE = "scoring.member_score_reasons"
DUES_COLUMNS = ["member_id", "dues_base", *[f"dues_reason_{r}{s}" for r in (1, 2, 3) for s in ("", "_group", "_points")],
                "dues_reasons", "dues_contributions", "dues_input_hash", "dues_explain_version", "dues_explained_on",
                "dues_explained_score"]
PENDING = "not yet explained: this member's reasons come within the next nights"


class ReasonsConfig(dg.Config):
    chunk_size: int = 20_000  # members read and explained at a time (memory ~ chunk x background predictions)
    background_size: int = 8
    # ~2.5 ms a member on one core: about a minute a night, whatever the association's size.
    max_explained_per_run: int = 25_000
    # Inputs move daily for most members, scores rarely (about 1% of members by 0.02 a day in the demo): stored
    # reasons stand while the score they add up to is within this of today's, for up to max_reason_age_days.
    # 0 re-explains every member whose inputs changed.
    score_tolerance: float = 0.02
    max_reason_age_days: int = 60


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
                             "table_name = 'member_score_reasons' and column_name = 'dues_explained_score'")
                .fetchall()[0][0])  # fetchall: a pending result would block register() on this connection


def refresh_order(todo_ids: np.ndarray, explained_on: pd.Series, budget: int) -> np.ndarray:
    """The members a run explains, out of those that need it: the never-explained first (explained_on NaT),
    then the longest unrefreshed, then by id; at most `budget`."""
    order = pd.DataFrame({"member_id": todo_ids, "never": explained_on.isna().to_numpy(),
                          "on": explained_on.to_numpy()}).sort_values(["never", "on", "member_id"],
                                                                     ascending=[False, True, True])
    return np.sort(order.member_id.to_numpy()[:max(0, budget)])


def _plan_chunk(conn, inputs: dict, saved: dict, version: str, scores: pd.Series, as_of: dt.date,
                config: ReasonsConfig) -> dict:
    """What a chunk needs: its inputs' hashes, its stored rows, and which members need explaining (changed
    inputs, unless their stored reasons still stand)."""
    features = inputs["features"]
    hashes = input_hashes(features[saved["columns"]].to_numpy(dtype=float), inputs["last_seen"], SIGNALS)
    stored = conn.execute(f"select {', '.join(DUES_COLUMNS)} from {REASONS_TABLE} "
                          "where member_id in (select member_id from chunk_ids)").df() if _stored(conn) else (
        pd.DataFrame(columns=DUES_COLUMNS))
    changed = needs_explaining(hashes, version, stored, features.index)
    standing = changed & still_standing(stored, features.index, version, scores, as_of, config.score_tolerance,
                                        config.max_reason_age_days)
    return {"hashes": hashes, "stored": stored, "todo": changed & ~standing, "standing": int(standing.sum())}


def _dues_chunk(inputs: dict, plan: dict, chosen: np.ndarray, saved: dict, background: np.ndarray, version: str,
                seed: int, as_of: dt.date, scores: pd.Series) -> tuple[pd.DataFrame, int, int, int]:
    """(dues rows of the chunk, explained, reused, pending): fresh rows for the chosen members who need it,
    stored rows for the others (dated), a pending row for a never-explained member beyond the budget."""
    features, last_seen, stored = inputs["features"], inputs["last_seen"], plan["stored"]
    fresh_mask = plan["todo"] & features.index.isin(chosen)
    kept = stored[stored.member_id.isin(features.index[~fresh_mask])]
    parts = [kept]
    if fresh_mask.any():
        _, contributions, fresh = dues_explanations(saved["model"], saved["columns"], features[fresh_mask],
                                                    background, last_seen[fresh_mask], seed=seed)
        fresh["dues_contributions"] = [json.dumps({k: round(float(v), 6) for k, v in row.items()})
                                       for row in contributions.to_dict(orient="records")]
        fresh["dues_input_hash"], fresh["dues_explain_version"] = plan["hashes"][fresh_mask], version
        fresh["dues_explained_on"] = pd.Timestamp(as_of)
        fresh["dues_explained_score"] = scores.reindex(fresh.member_id).to_numpy()
        parts.append(fresh[DUES_COLUMNS])
    waiting = features.index[~fresh_mask].difference(pd.Index(kept.member_id))
    if len(waiting):
        parts.append(pd.DataFrame({"member_id": waiting, "dues_reasons": PENDING}).reindex(columns=DUES_COLUMNS))
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else (
        pd.DataFrame(columns=DUES_COLUMNS))
    reused = int((~plan["todo"]).sum())
    return (rows.sort_values("member_id", ignore_index=True), int(fresh_mask.sum()), reused,
            int(plan["todo"].sum() - fresh_mask.sum()))


def _explain_into(spill: Path, conn: duckdb.DuckDBPyConnection, saved: dict, seed: int,
                  config: ReasonsConfig) -> dict:
    """Explain chunk by chunk into Parquet files under spill. Returns the counts. Two passes: the first finds
    who needs explaining (so the budget goes to the right members across chunks), the second explains."""
    propensity = conn.execute("select member_id, as_of, dues_propensity, model_version "
                              "from scoring.dues_propensity").df()
    as_of = pd.Timestamp(propensity.as_of.max()).date()
    scores = propensity.set_index("member_id").dues_propensity
    ids = np.sort(conn.execute("select member_id from scoring.member_scores").df().member_id.to_numpy())
    reference = _member_inputs(conn, background_members(ids, config.background_size, seed), as_of)["features"]
    background = reference[saved["columns"]].to_numpy(dtype=float)
    version = explain_version(str(saved.get("version", "")), background, seed)
    engagement = engagement_contributions(conn.execute("select * from marts.member_engagement").df(),
                                          dbt_vars()["mode_weights"])
    engagement_raw = conn.execute("select member_id, engagement_raw from marts.member_engagement").df()
    chunks = [ids[i * config.chunk_size:(i + 1) * config.chunk_size]
              for i in range(math.ceil(len(ids) / config.chunk_size))]
    todo_ids, explained_on, standing = [], [], 0
    for i, chunk in enumerate(chunks):
        inputs = _member_inputs(conn, chunk, as_of)
        plan = _plan_chunk(conn, inputs, saved, version, scores, as_of, config)
        standing += plan["standing"]
        pd.to_pickle((inputs, plan), spill / f"plan-{i:05d}.pkl")
        todo_ids.append(inputs["features"].index[plan["todo"]].to_numpy())
        on = plan["stored"].set_index("member_id").dues_explained_on if len(plan["stored"]) else pd.Series(
            dtype="datetime64[ns]")
        explained_on.append(pd.to_datetime(on.reindex(todo_ids[-1])))
    todo = np.concatenate(todo_ids) if todo_ids else np.array([], dtype=int)
    chosen = refresh_order(todo, pd.concat(explained_on) if explained_on else pd.Series(dtype="datetime64[ns]"),
                           config.max_explained_per_run)
    counts = {"explained": 0, "reused": 0, "pending": 0, "rows": 0, "standing": standing}
    for i, chunk in enumerate(chunks):
        plan_path = spill / f"plan-{i:05d}.pkl"
        inputs, plan = pd.read_pickle(plan_path)
        plan_path.unlink()
        conn.register("chunk_ids", pd.DataFrame({"member_id": chunk}))
        dues, explained, reused, pending = _dues_chunk(inputs, plan, chosen, saved, background, version, seed,
                                                       as_of, scores)
        out = dues.merge(propensity[["member_id", "dues_propensity", "model_version"]], on="member_id", how="left")
        out = out.merge(_engagement(conn, chunk, as_of, engagement), on="member_id", how="left")
        out = out.merge(engagement_raw, on="member_id", how="left").assign(as_of=as_of)
        out.to_parquet(spill / f"{i:05d}.parquet", index=False)
        counts |= {"explained": counts["explained"] + explained, "reused": counts["reused"] + reused,
                   "pending": counts["pending"] + pending, "rows": counts["rows"] + len(out)}
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
    "the model are unchanged keep their stored dues reasons, and so do those whose score moved less than "
    "score_tolerance (0.02) from the score the reasons add up to, for up to max_reason_age_days (60). At most max_explained_per_run members are explained a "
    "night (the never-explained first, then the longest unrefreshed): the others keep their dated reasons "
    "(dues_explained_on; dues_explained_score is the score those contributions add up to) until a later night.",
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
                     f"{counts['reused']} reused, {counts['pending']} left for the next nights "
                     f"(at most {config.max_explained_per_run} a run), {seconds} s")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": counts["rows"],
        "members_explained": counts["explained"],
        "members_reused": counts["reused"],
        "members_reused_score_within_tolerance": counts["standing"],
        "members_left_for_next_nights": counts["pending"],
        "seconds": seconds,
        "dues_base": float(counts["base"]) if counts["base"] is not None else float("nan"),
        "top_dues_reason_groups": _table(counts["top_groups"], "dues_reason_1_group"),
        "top_engagement_modes": _table(counts["top_modes"], "engagement_top_mode"),
    })
