"""campaign_results' plain-language metadata: each campaign's summary, its uplift picture, its backfill range and
command, and its uplift as a number the Plots tab can draw (campaigns/summary.py and workbench/trends.py do the work).

The UI's metadata table shows a text value whole, and a Markdown value only when it is short: so each campaign's
summary is a text entry of its own, and the uplift picture is a small inline SVG (scoring/plots.py)."""

import datetime as dt

import dagster as dg
import pandas as pd

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.summary import Window, campaign_summaries
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.scoring.plots import interval_svg_markdown
from alumni_orchestration.warehouse import table_exists
from alumni_orchestration.workbench.trends import campaign_trends

WINDOWS_QUERY = f"""select campaign_id, cycle, min(as_of) as first_send, max(as_of) as last_send
from {ledger.SENDS} where arm = 'treatment' group by all"""
UPLIFT_PICTURE = "uplift (95% CI)"


def send_windows(warehouse: WarehouseResource) -> dict[tuple[str, str], Window]:
    with warehouse.read() as conn:
        if not table_exists(conn, ledger.SENDS):
            return {}
        frame = conn.execute(WINDOWS_QUERY).df()
    return {(r.campaign_id, r.cycle): Window(pd.Timestamp(r.first_send).date(), pd.Timestamp(r.last_send).date())
            for r in frame.itertuples()}


def campaign_name(campaign_id: str, cycle: str, stratum: str) -> str:
    return f"{campaign_id} {cycle}" + ("" if stratum == "targeted" else f" {stratum}")


def uplift_picture(results: pd.DataFrame) -> str:
    """Each measured campaign's uplift with its 95% CI, in points, as a Markdown image the UI draws inline."""
    treated = results[(results.arm == "treatment") & results.uplift.notna()] if len(results) else results
    strata = treated.stratum if "stratum" in treated.columns else pd.Series("targeted", index=treated.index)
    rows = [(campaign_name(c, y, s), 100 * u, 100 * lo, 100 * hi) for c, y, s, u, lo, hi in zip(
        treated.campaign_id, treated.cycle, strata, treated.uplift, treated.uplift_ci_low.fillna(treated.uplift),
        treated.uplift_ci_high.fillna(treated.uplift), strict=True)]
    return interval_svg_markdown(rows, "points", "uplift in points, 95% CI")


def campaign_summary_metadata(warehouse: WarehouseResource, results: pd.DataFrame, outcome_window_days: int,
                              acquire_member_eur: float) -> dict:
    """Metadata to put first: `summary: <campaign> <cycle>` (a plain-language paragraph each), the uplift picture,
    `backfill after: <campaign> <cycle>` (the range and the command) and the numeric uplifts."""
    summaries = campaign_summaries(results, send_windows(warehouse), outcome_window_days, dt.date.today(),
                                   acquire_member_eur)
    if summaries.empty:
        return {"summary": dg.MetadataValue.text("no campaign sent yet"), **campaign_trends(results)}
    names = [campaign_name(r.campaign_id, r.cycle, r.stratum) for r in summaries.itertuples()]
    metadata: dict = {f"summary: {name}": dg.MetadataValue.text(r.summary)
                      for name, r in zip(names, summaries.itertuples(), strict=True)}
    picture = uplift_picture(results)
    if picture:
        metadata[UPLIFT_PICTURE] = dg.MetadataValue.md(picture)
    for name, r in zip(names, summaries.itertuples(), strict=True):
        if r.backfill_command:
            metadata[f"backfill after: {name}"] = dg.MetadataValue.text(
                f"{r.backfill_from} .. {r.backfill_to}: {r.backfill_command} (or in the UI: campaign_window_job, "
                "Materialize, that partition range)")
    return {**metadata, **campaign_trends(results)}
