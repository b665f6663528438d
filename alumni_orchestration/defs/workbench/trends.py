"""member_scores' trend metadata: numbers for the Plots tab and the dues paid curve (workbench/trends.py)."""

import datetime as dt

import dagster as dg
import pandas as pd

from alumni_orchestration.defs.warehouse.resources import WarehouseResource
from alumni_orchestration.scoring.plots import markdown_image
from alumni_orchestration.warehouse import table_exists
from alumni_orchestration.workbench.trends import dues_curve, dues_curve_png, score_trends


def score_trend_metadata(warehouse: WarehouseResource, scores: pd.DataFrame) -> dict:
    """Numeric metadata (members by segment, ambassadors, at-risk members, dues paid rate against the same day
    last year, engagement median, model AUC and ECE) and the dues paid curve against last year."""
    as_of = pd.Timestamp(scores.as_of.max()).date() if len(scores) else dt.date.today()
    with warehouse.read() as conn:
        metrics = (conn.execute("select * from scoring.model_metrics").df() if table_exists(conn, "scoring.model_metrics")
                   else pd.DataFrame(columns=["model", "metric", "value", "segment", "as_of"]))
        dues = conn.execute("select member_id, dues_year, paid, amount_eur, first_paid_on, tier "
                            "from marts.dues_history").df()
        members = conn.execute("select member_id, joined_on, left_on from staging.stg_membership__members").df()
    trends = score_trends(scores, metrics, dues, members, as_of)
    curve = dues_curve(dues, as_of)
    picture = markdown_image(dues_curve_png(curve, f"Dues paid, cycle {as_of.year} against {as_of.year - 1}"),
                             "dues paid curve")
    return {**trends, "dues_paid_curve": dg.MetadataValue.md(picture)}
