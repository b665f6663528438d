"""What a finished `make demo` must hold for the digital lead (issue 16's "on the demo" points), read from its
$ALUMNI_HOME: the member lists with their columns, the ambassador list against scoring.member_scores, the
night's exports (CSV and XLSX) opened as the team would, the weekly digest in the outbox, and the three
nightly materialisations the Plots tab draws. Used by the end-to-end demo test and, against an existing demo,
by `ALUMNI_DEMO_HOME=... pytest tests/test_demo_progress.py -k finished_demo`."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pandas as pd

from alumni_orchestration.workbench.exports import read_csv

# The columns the issue names for every list: who, how to reach them and whether one may, the scores, why.
COMMON = {"member_id", "first_name", "last_name", "email", "promo", "region", "segment", "consent_email",
          "engagement_score", "engagement_percentile", "dues_propensity", "dues_propensity_percentile",
          "engagement_reason", "dues_reasons", "list_filter"}
PER_LIST = {
    "ambassadors": {"active_modes", "top_interests"},
    "volunteer_candidates": {"active_modes", "top_interests"},
    "at_risk": {"engagement_trend", "score_30d_ago"},
    "dues_due": {"reminders_sent", "last_reminder_on", "current_dues_tier"},
    "interest_audiences": {"topic", "rank_in_topic", "affinity", "consent_newsletter"},
}


def check_demo_outputs(home: Path) -> dict[str, int]:
    """Asserts every point; returns the lists' row counts (for the caller's report)."""
    counts: dict[str, int] = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        as_of = conn.execute("select max(as_of) from scoring.member_scores").fetchone()[0]
        flagged = {r[0] for r in conn.execute(
            "select member_id from scoring.member_scores where is_ambassador and as_of = ?", [as_of]).fetchall()}
        lists = {name: conn.execute(f"select * from workbench.{name}").df() for name in PER_LIST}
        digests = conn.execute("select subject, text from campaigns.outbox where subject like '%Weekly digest%'"
                               ).fetchall()
    assert flagged, "no ambassador flagged in scoring.member_scores"
    for name, frame in lists.items():
        missing = (COMMON | PER_LIST[name]) - set(frame.columns)
        assert not missing, f"workbench.{name} lacks {sorted(missing)}"
        assert len(frame), f"workbench.{name} is empty"
        assert frame.list_filter.nunique() == 1 and frame.list_filter.iloc[0], name
        counts[name] = len(frame)
    assert set(lists["ambassadors"].member_id) == flagged
    assert lists["ambassadors"].member_id.is_unique

    folder = home / "exports" / pd.Timestamp(as_of).date().isoformat()
    for name, frame in lists.items():
        csv_path, xlsx_path = folder / f"{name}.csv", folder / f"{name}.xlsx"
        assert csv_path.read_bytes()[:3] == b"\xef\xbb\xbf", f"{csv_path} has no UTF-8 BOM"
        back = read_csv(csv_path)
        assert list(back.columns) == list(frame.columns) and len(back) == len(frame), csv_path
        for column in ("first_name", "last_name"):  # accented names survive the round trip, row for row
            assert back[column].fillna("").tolist() == frame[column].fillna("").tolist(), (csv_path, column)
        sheet = openpyxl.load_workbook(xlsx_path, read_only=False).active
        assert [cell.value for cell in sheet[1]] == list(frame.columns) and sheet.freeze_panes == "A2", xlsx_path
        assert sheet.max_row == len(frame) + 1, xlsx_path
        assert len(pd.read_excel(xlsx_path)) == len(frame), xlsx_path
    names = pd.concat([lists[name][["first_name", "last_name"]] for name in lists])
    accented = names.apply(lambda r: any(not str(v).isascii() for v in r), axis=1)
    assert accented.any(), "no accented name on any list: the round trip proves nothing"
    counts["accented_names"] = int(accented.sum())

    # The demo's sending resource is SendGrid's sandbox (outbox mode writes campaigns.outbox instead): the
    # sandbox keeps every mail send it accepted, the demo's outbox.
    accepted = home / "demo" / "mail_send.jsonl"
    requests = [json.loads(line)["request"] for line in accepted.read_text().splitlines()] if accepted.exists() else []
    digests += [(r["subject"], r["content"][0]["value"]) for r in requests if "Weekly digest" in r.get("subject", "")]
    assert digests, "no weekly digest in campaigns.outbox nor in the sandbox's accepted mail"
    subject, text = digests[-1]
    assert f"(now {len(lists['ambassadors']):,})" in text.split("New ambassadors")[1].split("\n")[0], text
    assert f"(now {len(lists['at_risk']):,})" in text.split("turned at-risk")[1].split("\n")[0], text
    assert "Dues:" in text and "Campaigns:" in text, text
    assert not any(f"{r.first_name} {r.last_name}" in text for r in lists["ambassadors"].head(50).itertuples())

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        mains = instance.get_runs(dg.RunsFilter(job_name="alumni_main"))
        assert len(mains) >= 3 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in mains), \
            [run.status for run in mains]
        points = instance.fetch_materializations(dg.AssetKey(["scoring", "member_scores"]), limit=10).records
        plotted = [r.asset_materialization.metadata["ambassadors"].value for r in points]
        assert len(plotted) >= 3 and all(isinstance(v, int) for v in plotted), plotted
    counts["member_scores_points"] = len(plotted)
    return counts
