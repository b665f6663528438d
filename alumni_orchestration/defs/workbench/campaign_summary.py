"""campaign_results' plain-language metadata: each campaign's summary, its backfill range and command, and its
uplift as a number the Plots tab can draw (campaigns/summary.py and workbench/trends.py do the work)."""

import datetime as dt

import dagster as dg
import pandas as pd

from alumni_orchestration.campaigns import ledger
from alumni_orchestration.campaigns.summary import Window, campaign_summaries, summaries_markdown
from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.warehouse import table_exists
from alumni_orchestration.workbench.trends import campaign_trends

WINDOWS_QUERY = f"""select campaign_id, cycle, min(as_of) as first_send, max(as_of) as last_send
from {ledger.SENDS} where arm = 'treatment' group by all"""


def send_windows(warehouse: WarehouseResource) -> dict[tuple[str, str], Window]:
    with warehouse.read() as conn:
        if not table_exists(conn, ledger.SENDS):
            return {}
        frame = conn.execute(WINDOWS_QUERY).df()
    return {(r.campaign_id, r.cycle): Window(pd.Timestamp(r.first_send).date(), pd.Timestamp(r.last_send).date())
            for r in frame.itertuples()}


def campaign_summary_metadata(warehouse: WarehouseResource, results: pd.DataFrame, outcome_window_days: int,
                              acquire_member_eur: float) -> dict:
    """Metadata to put first: `summary` (Markdown, one paragraph per campaign) and numeric uplifts."""
    summaries = campaign_summaries(results, send_windows(warehouse), outcome_window_days, dt.date.today(),
                                   acquire_member_eur)
    return {"summary": dg.MetadataValue.md(summaries_markdown(summaries)), **campaign_trends(results)}
