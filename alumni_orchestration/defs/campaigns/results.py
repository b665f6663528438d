"""campaigns.campaign_results: what each campaign achieved, per cycle and arm, with uplift and ROI.

Rebuilt whole from the ledger, SendGrid's webhook events and the marts, so it is always consistent
with the latest ingestion: after a campaign, backfill its window (late webhook events and payments
arrive for days) with `campaign_window_job`, and the results follow.
"""

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_dbt import get_asset_key_for_model
from pydantic import Field

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.compare import randomised_records
from alumni_orchestration.campaigns.definitions import campaigns
from alumni_orchestration.campaigns.evaluation import policy_report
from alumni_orchestration.campaigns.results import (
    Costs,
    against_truth,
    campaign_results,
    outcomes_within_window,
)
from alumni_orchestration.campaigns.summary import policy_sentences, truth_sentences
from alumni_orchestration.defs.campaigns.assets import AUDIENCE, SENDS
from alumni_orchestration.defs.campaigns.resources import deployment_send_mode
from alumni_orchestration.defs.dbt.assets import dbt_models
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.defs.workbench.campaign_summary import campaign_summary_metadata
from alumni_orchestration.partitions import daily_partitions
from alumni_orchestration.scoring.plots import figure_png, markdown_image
from alumni_orchestration.warehouse import WAREHOUSE_POOL, table_exists

RESULTS = dg.AssetKey(["campaigns", "campaign_results"])
RESULTS_TABLE = "campaigns.campaign_results"
# Optional: a folder where a simulator wrote the true effects (the demo only). Read, never imported.
SIMULATED_TRUTH_DIR = "ALUMNI_SIMULATED_TRUTH_DIR"
TRUE_EFFECTS_FILE = "true_effects.csv"
MEMBER_OUTCOMES_TABLE = "marts.campaign_member_outcomes"


class CampaignResultsConfig(dg.Config):
    outcome_window_days: int = Field(default=30, description="retained = paid / re-engaged within this many days")
    cost_per_email_eur: float = Field(default=0.002)
    retain_member_eur: float = Field(default=1.0, description="what keeping a member costs (seed documents: 1 €)")
    acquire_member_eur: float = Field(default=9.0, description="what recruiting a member costs (seed documents: 9 €)")


def simulated_truth(results: pd.DataFrame, members: pd.DataFrame | None, truth_dir: str) -> pd.DataFrame | None:
    """On a simulated association (the demo), each campaign's true uplift beside its estimate. The simulator
    writes every member's true effect to <truth_dir>/true_effects.csv (campaign_id, dues_year, member_id,
    true_effect); an audience's true uplift is its members' mean effect. None in production: no such file."""
    path = Path(truth_dir) / TRUE_EFFECTS_FILE if truth_dir else None
    if path is None or not path.is_file() or members is None or members.empty:
        return None
    effects = pd.read_csv(path, dtype={"campaign_id": str})
    targeted = members[members.stratum == "targeted"] if "stratum" in members else members
    audiences = targeted[targeted.campaign_id.isin(effects.campaign_id.unique())][["campaign_id", "cycle", "member_id"]]
    audiences = audiences.assign(dues_year=pd.to_numeric(audiences.cycle.str[:4], errors="coerce"))
    known = audiences.merge(effects, on=["campaign_id", "dues_year", "member_id"], how="left")
    truth = known.fillna({"true_effect": 0.0}).groupby(["campaign_id", "cycle"]).true_effect.mean()
    return against_truth(results, truth.to_dict())


def uplift_plot_png(results: pd.DataFrame, truth: pd.DataFrame | None = None) -> bytes:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    treated = results[results.arm == "treatment"].dropna(subset=["uplift"])
    fig, ax = plt.subplots(figsize=(7, 1.3 + 0.45 * max(len(treated), 1)))
    labels = [f"{c} {y}" + (" (explored)" if s == "explored" else "")
              for c, y, s in zip(treated.campaign_id, treated.cycle, treated.get("stratum", treated.cycle), strict=True)]
    ax.errorbar(treated.uplift, range(len(treated)), xerr=[treated.uplift - treated.uplift_ci_low,
                                                          treated.uplift_ci_high - treated.uplift],
                fmt="o", capsize=4, label="estimate (95% CI)")
    if truth is not None and len(truth):
        strata = treated.get("stratum", pd.Series("targeted", index=treated.index))
        positions = {(c, y): i for i, (c, y, s) in enumerate(zip(treated.campaign_id, treated.cycle, strata, strict=True))
                     if s == "targeted"}
        known = truth[[(c, y) in positions for c, y in zip(truth.campaign_id, truth.cycle, strict=True)]]
        ax.plot(known.true_uplift, [positions[(c, y)] for c, y in zip(known.campaign_id, known.cycle, strict=True)],
                "x", color="crimson", markersize=9, label="simulated truth")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2, fontsize=8, frameon=False)
    ax.axvline(0, color="grey", linewidth=1)
    ax.set_yticks(range(len(treated)), labels)
    ax.set_xlabel("uplift in retention, treatment - control (95% CI)")
    return figure_png(fig, dpi=90)


def policy_results(conn, window_days: int) -> pd.DataFrame:
    """Per campaign with an exploration arm and period: each targeting policy per 100 messages (evaluation.py)."""
    frames = []
    for campaign in campaigns().values():
        if not campaign.targeting.exploration_share:
            continue
        records = randomised_records(conn, campaign, window_days)
        if len(records):
            report = policy_report(records, campaign.targeting, campaign.triggers[0].threshold, campaign.holdout_share)
            frames.append(report.assign(campaign_id=campaign.campaign_id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def member_outcomes(conn, window_days: int) -> pd.DataFrame:
    """One row per ledger member with their arm and outcomes within `window_days`: the campaign_member_outcomes
    mart, each campaign measured on the outcome campaigns.yaml declares for it."""
    # Outboxed rows were never sent: they count as sent only where the outbox is the deployment's channel.
    delivered = ledger.delivered_statuses(deployment_send_mode())
    mart = conn.execute(f"select * from {MEMBER_OUTCOMES_TABLE}").df()
    outcome_of = {campaign_id: c.outcome for campaign_id, c in campaigns().items()}
    return outcomes_within_window(mart, outcome_of, window_days, delivered)


@dg.asset(
    key=RESULTS,
    group_name="campaigns",
    kinds={"python", "duckdb"},
    deps=[SENDS, AUDIENCE, get_asset_key_for_model([dbt_models], "campaign_member_outcomes"),
          dg.AssetKey(["scoring", "member_uplift_scores"])],
    pool=WAREHOUSE_POOL,
    description="One row per campaign, cycle, stratum (targeted, explored) and arm: audience, sent, delivered, unique "
    "human opens, clicks, unsubscribes, spam reports, members retained (the campaign's declared outcome) within N "
    "days and revenue; the uplift of treatment over control with its 95% CI, incremental members retained, their "
    "cost, and ROI. In its metadata, each targeting policy's incremental outcomes per 100 messages.",
)
def campaign_results_asset(context: dg.AssetExecutionContext, config: CampaignResultsConfig,
                           warehouse: WarehouseResource):
    costs = Costs(per_email_eur=config.cost_per_email_eur, retain_member_eur=config.retain_member_eur,
                  acquire_member_eur=config.acquire_member_eur)
    with warehouse.read() as conn:
        ready = table_exists(conn, MEMBER_OUTCOMES_TABLE)
        members = member_outcomes(conn, config.outcome_window_days) if ready else None
        policies = policy_results(conn, config.outcome_window_days) if ready else pd.DataFrame()
    results = campaign_results(members if members is not None else pd.DataFrame(), costs)
    with warehouse.write() as conn:
        conn.execute("create schema if not exists campaigns")
        conn.register("new_results", results.assign(outcome_window_days=config.outcome_window_days))
        conn.execute(f"create or replace table {RESULTS_TABLE} as select * from new_results")
    shown = results.round(4)
    metadata = {
        "dagster/row_count": len(results),
        "outcome_window_days": config.outcome_window_days,
        "retention_vs_acquisition_cost_ratio": costs.retention_vs_acquisition,
        "results": dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "_no campaign sent yet_"),
    }
    # In words, one entry per campaign: a wide Markdown table shown in place would widen the UI's whole metadata
    # table past its panel, and cut the summaries on the right.
    for campaign_id, sentence in policy_sentences(policies).items() if len(policies) else ():
        metadata[f"policies per 100 messages: {campaign_id}"] = dg.MetadataValue.text(
            "each targeting policy's extra outcomes per 100 messages at the volume it would send, estimated from "
            f"the holdout and exploration arms: {sentence}")
    truth = simulated_truth(results, members, os.environ.get(SIMULATED_TRUTH_DIR, ""))
    if truth is not None and len(truth):
        for name, sentence in truth_sentences(truth).items():  # synthetic association only
            metadata[f"simulated truth: {name}"] = dg.MetadataValue.text(sentence)
        metadata["truth_covered"] = f"{int(truth.covered.sum())} of {len(truth)}"
    if len(results.dropna(subset=["uplift"])):
        metadata["uplift_by_campaign"] = dg.MetadataValue.md(markdown_image(uplift_plot_png(results, truth), "uplift"))
    context.log.info(f"campaign results: {len(results)} rows")
    metadata = {**campaign_summary_metadata(warehouse, results, config.outcome_window_days,
                                            config.acquire_member_eur), **metadata}
    return dg.MaterializeResult(metadata=metadata)


campaign_window_job = dg.define_asset_job(
    name="campaign_window_job",
    selection=dg.AssetSelection.groups("sources", "staging", "intermediate", "marts") | dg.AssetSelection.assets(RESULTS),
    partitions_def=daily_partitions,
    description="After a campaign: backfill its window — from the first send to N days after — to re-ingest the "
    "late webhook events and payments, rebuild the marts, and recompute campaigns.campaign_results. Launch it "
    "from the UI (Materialize → partition range) or `dagster job backfill`; the daily assets run as one run.",
)
