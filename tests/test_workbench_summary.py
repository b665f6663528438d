"""Campaign results in plain language (campaigns/summary.py) and the trend numbers (workbench/trends.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from alumni_orchestration.campaigns.results import Costs, campaign_results
from alumni_orchestration.campaigns.summary import (
    Window,
    audience_needed,
    backfill_range,
    campaign_summaries,
    people_number,
    summaries_markdown,
)
from alumni_orchestration.workbench.trends import campaign_trends, dues_curve, dues_to_date, score_trends


def _members(campaign_id: str, cycle: str, treated: int, treated_retained: int, control: int, control_retained: int,
             revenue: float = 90.0) -> pd.DataFrame:
    rows = []
    for arm, n, k in (("treatment", treated, treated_retained), ("control", control, control_retained)):
        for i in range(n):
            rows.append({"campaign_id": campaign_id, "cycle": cycle, "member_id": len(rows), "arm": arm,
                         "sent": arm == "treatment", "delivered": arm == "treatment", "opened": False,
                         "clicked": False, "unsubscribed": False, "spam_reported": False, "retained": i < k,
                         "revenue_eur": revenue if i < k else 0.0})
    return pd.DataFrame(rows)


def test_people_numbers_are_rounded_with_their_unit() -> None:
    assert people_number(1260.4, "€") == "1,260 €"
    assert people_number(691.308) == "691"
    assert people_number(3.25) == "3.2" or people_number(3.25) == "3.3"
    assert people_number(float("nan")) == "n/a"


def test_a_tiny_control_group_is_inconclusive_and_says_the_audience_needed() -> None:
    results = campaign_results(_members("dues_reminder", "2026", 210, 40, 2, 0), Costs())
    summary = campaign_summaries(results, {}, 30, dt.date(2026, 6, 1), 9.0).summary.iloc[0]
    assert summary.startswith("inconclusive: the control group is too small (2 members); an audience of about ")
    needed = audience_needed(0.0, 40 / 210, 2 / 212)
    assert f"an audience of about {people_number(needed)} is needed to detect an effect of 19 points" in summary


def test_a_clear_effect_reads_as_extra_payments_euros_messages_and_roi_in_words() -> None:
    results = campaign_results(_members("dues_reminder", "2026-03", 1000, 300, 1000, 200), Costs())
    summary = campaign_summaries(results, {}, 30, dt.date(2026, 6, 1), 9.0).summary.iloc[0]
    assert summary.startswith("worked: +10.0 points of dues paid (95% CI +")
    assert "it brought about 100 extra payments, 9,000 € for 1,000 messages (cost 2 €)" in summary
    assert "ROI 449: each 1 € spent on emails returned about 450 € of members kept, valued at 9 € each" in summary


def test_each_campaign_names_its_backfill_range_and_command() -> None:
    results = campaign_results(_members("reengagement", "2026-Q1", 100, 10, 10, 1), Costs())
    windows = {("reengagement", "2026-Q1"): Window(dt.date(2026, 3, 2), dt.date(2026, 3, 9))}
    summaries = campaign_summaries(results, windows, 30, dt.date(2026, 12, 1), 9.0)
    row = summaries.iloc[0]
    assert (row.backfill_from, row.backfill_to) == ("2026-03-02", "2026-04-08")
    assert row.backfill_command.endswith("--partition-range 2026-03-02...2026-04-08")
    assert "campaign_window_job" in summaries_markdown(summaries)
    # Never past today: the partitions do not exist yet.
    assert backfill_range(Window(dt.date(2026, 3, 2), dt.date(2026, 3, 9)), 30, dt.date(2026, 3, 20)) == (
        "2026-03-02", "2026-03-20")


def test_campaign_trends_are_the_latest_uplift_in_points_per_campaign() -> None:
    results = pd.concat([campaign_results(_members("dues_reminder", "2025", 100, 30, 100, 20), Costs()),
                         campaign_results(_members("dues_reminder", "2026", 100, 40, 100, 20), Costs())])
    assert campaign_trends(results) == {"uplift_points/dues_reminder": pytest.approx(20.0)}


def test_score_trends_count_segments_lists_and_dues_against_the_same_day_last_year() -> None:
    scores = pd.DataFrame({"member_id": [1, 2, 3], "segment": ["retired", "retired", "students"],
                           "engagement_score": [10.0, 50.0, 90.0], "engagement_trend": [-9.0, 0.0, 1.0],
                           "is_ambassador": [False, False, True], "volunteer_candidate": [False, True, False]})
    members = pd.DataFrame({"member_id": [1, 2, 3, 4], "joined_on": pd.to_datetime(["2020-01-01"] * 3 + ["2026-01-01"]),
                            "left_on": pd.NaT})
    dues = pd.DataFrame({"member_id": [1, 2, 1, 3, 4], "dues_year": [2025, 2025, 2026, 2026, 2026],
                         "paid": True, "amount_eur": [90.0, 45.0, 90.0, 20.0, 90.0], "tier": "annual",
                         "first_paid_on": pd.to_datetime(["2025-02-01", "2025-06-01", "2026-02-01", "2026-03-01",
                                                          "2026-12-01"])})
    metrics = pd.DataFrame({"model": "dues_propensity", "metric": ["roc_auc", "ece"], "value": [0.81, 0.02],
                            "segment": "all", "as_of": dt.date(2026, 5, 1)})
    trends = score_trends(scores, metrics, dues, members, dt.date(2026, 5, 1))
    assert trends["members/retired"] == 2 and trends["members/students"] == 1
    assert (trends["ambassadors"], trends["volunteer_candidates"], trends["at_risk_members"]) == (1, 1, 1)
    assert trends["engagement_median"] == 50.0
    assert trends["dues_paid_rate"] == pytest.approx(2 / 4)  # member 4 paid after the day
    assert trends["dues_paid_rate_same_day_last_year"] == pytest.approx(1 / 3, abs=1e-4)  # member 4 had not joined
    assert trends["dues_collected_eur"] == 110.0 and trends["dues_collected_eur_same_day_last_year"] == 90.0
    assert (trends["model_auc"], trends["model_ece"]) == (0.81, 0.02)
    assert dues_to_date(dues, members, dt.date(2026, 12, 31))["payers"] == 3
    curve = dues_curve(dues, dt.date(2026, 5, 1))
    assert curve[curve.cycle == "this year"].payers.max() == 2 and curve[curve.cycle == "last year"].payers.max() == 2


@pytest.mark.slow
def test_campaign_results_leads_with_its_summary_backfill_command_and_uplift_trend(scored_association, tmp_path,
                                                                                    monkeypatch) -> None:
    import shutil

    import dagster as dg

    from alumni_orchestration.campaigns.ledger import ensure_tables
    from alumni_orchestration.defs.campaigns.results import campaign_results_asset
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource

    for name in ("SENDGRID_API_KEY", "ALUMNI_SEND_MODE"):
        monkeypatch.delenv(name, raising=False)
    _, source = scored_association
    shutil.copy(source, tmp_path / "warehouse.duckdb")
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    with warehouse.write() as conn:
        ensure_tables(conn)
        members = [r[0] for r in conn.execute("select member_id from scoring.member_scores order by member_id "
                                               "limit 30").fetchall()]
        for i, member_id in enumerate(members):  # 28 reminded on 2 and 9 March, 2 held out
            arm, status = ("control", "held_out") if i < 2 else ("treatment", "scheduled")
            day = dt.date(2026, 3, 2 if i % 2 else 9)
            conn.execute("insert into campaigns.campaign_sends (campaign_id, cycle, member_id, period, as_of, step, "
                         "arm, status, send_at, marketing, updated_at) values ('dues_reminder', '2026-r1', ?, "
                         "'2026', ?, 1, ?, ?, ?, true, now())",
                         [member_id, day, arm, status, dt.datetime.combine(day, dt.time(9), dt.UTC)])
    result = dg.materialize([campaign_results_asset], resources={"warehouse": warehouse})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    # First the campaign's summary, as text (the UI shows a text value whole, a long Markdown one behind a button),
    # then its uplift picture, short enough to be drawn in the metadata table, then the backfill to run after it.
    assert list(metadata)[:3] == ["summary: dues_reminder 2026-r1", "uplift (95% CI)",
                                  "backfill after: dues_reminder 2026-r1"]
    summary = metadata["summary: dues_reminder 2026-r1"]
    assert isinstance(summary, dg.TextMetadataValue)
    assert "the control group is too small (2 members); an audience of about " in summary.value \
        or summary.value.startswith(("worked", "backfired"))
    picture = metadata["uplift (95% CI)"].value
    assert picture.startswith("![uplift in points, 95% CI](data:image/svg+xml,") and len(picture) < 1000
    assert "dues_reminder%202026-r1" in picture
    assert metadata["backfill after: dues_reminder 2026-r1"].value.startswith(
        "2026-03-02 .. 2026-04-08: dagster asset materialize -m alumni_orchestration.definitions --select "
        "'group:sources or group:staging or group:intermediate or group:marts or key:campaigns/campaign_results' "
        "--partition-range 2026-03-02...2026-04-08")
    assert isinstance(metadata["uplift_points/dues_reminder"].value, float)


@pytest.mark.slow
def test_member_scores_records_numeric_trends_that_match_the_tables(scored_association, tmp_path) -> None:
    import shutil

    import dagster as dg
    import duckdb

    from alumni_orchestration.defs.scoring.assets import member_scores
    from alumni_orchestration.defs.warehouse.resources import WarehouseResource
    from alumni_orchestration.partitions import AS_OF_TAG

    _, source = scored_association
    shutil.copy(source, tmp_path / "warehouse.duckdb")
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    result = dg.materialize([member_scores], resources={"warehouse": warehouse}, tags={AS_OF_TAG: "2026-11-22"})
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        by_segment = dict(conn.execute("select segment, count(*) from scoring.member_scores group by 1").fetchall())
        ambassadors, median, falling = conn.execute(
            "select count(*) filter (where is_ambassador), median(engagement_score), count(*) filter (where "
            "engagement_trend <= -8 or (engagement_score < 25 and engagement_trend < 0)) "
            "from scoring.member_scores").fetchone()
        auc, ece = conn.execute("select max(value) filter (where metric = 'roc_auc'), max(value) filter (where metric "
                                "= 'ece') from scoring.model_metrics where model = 'dues_propensity' and segment = "
                                "'all'").fetchone()
    assert {k.removeprefix("members/"): v for k, v in metadata.items() if k.startswith("members/")} == by_segment
    assert (metadata["ambassadors"], metadata["at_risk_members"]) == (ambassadors, falling)
    assert metadata["engagement_median"] == pytest.approx(median, abs=0.01)
    assert (metadata["model_auc"], metadata["model_ece"]) == (pytest.approx(auc, abs=1e-4), pytest.approx(ece, abs=1e-4))
    for key in ("dues_paid_rate", "dues_paid_rate_same_day_last_year", "dues_collected_eur"):
        assert isinstance(metadata[key], float) and metadata[key] > 0
    assert metadata["dues_paid_curve"].startswith("![dues paid curve](data:image/png;base64,")


def test_a_campaign_with_an_exploration_arm_gets_one_summary_per_stratum_and_its_trend_from_the_targeted() -> None:
    """Regression: campaign_results has a row per stratum and arm since the exploration arm; the summary took
    both strata's treatment rows as one arm and failed with "int() argument must be ... not 'Series'"."""
    targeted = _members("dues_reminder", "2026", 1000, 300, 1000, 200).assign(stratum="targeted")
    explored = _members("dues_reminder", "2026", 50, 5, 50, 5).assign(stratum="explored")
    explored["member_id"] += len(targeted)
    results = campaign_results(pd.concat([targeted, explored], ignore_index=True), Costs())
    assert sorted(set(results.stratum)) == ["explored", "targeted"]
    summaries = campaign_summaries(results, {}, 30, dt.date(2026, 6, 1), 9.0).set_index("stratum")
    assert summaries.loc["targeted"].summary.startswith("worked: +10.0 points of dues paid")
    assert summaries.loc["explored"].summary.startswith("exploration arm: inconclusive")
    assert campaign_trends(results) == {"uplift_points/dues_reminder": pytest.approx(10.0)}


def test_the_uplift_picture_stays_short_enough_for_the_ui_to_draw_it_inline() -> None:
    """The UI draws a Markdown metadata value in place only under 1,000 characters: the picture leaves out the
    rows that would not fit, says so, and places each dot between its interval's ends."""
    import re
    from urllib.parse import unquote

    from alumni_orchestration.scoring.plots import UI_INLINE_MARKDOWN_CHARS, interval_svg_markdown

    rows = [(f"campaign_{i} 2026-r1", 2.0 * i - 5, 2.0 * i - 12, 2.0 * i + 3) for i in range(12)]
    few = interval_svg_markdown(rows[:3], "points", "uplift")
    many = interval_svg_markdown(rows, "points", "uplift")
    assert len(few) < UI_INLINE_MARKDOWN_CHARS and len(many) < UI_INLINE_MARKDOWN_CHARS
    assert few.startswith("![uplift](data:image/svg+xml,") and " " not in few.split("](", 1)[1]
    drawn = int(re.search(r"first (\d+) of 12", many).group(1))
    assert 4 <= drawn < 12 and many.count("</text>") == drawn + 3
    svg = unquote(few.split("](", 1)[1][len("data:image/svg+xml,"):-1])
    bars = [tuple(map(int, b)) for b in re.findall(r"M(\d+),\d+H(\d+)", svg)]
    dots = [int(d) for d in re.findall(r"M(\d+),\d+h0", svg)]
    assert len(bars) == len(dots) == 3 and all(low <= dot <= high for (low, high), dot in zip(bars, dots, strict=True))
    assert interval_svg_markdown([], "points", "uplift") == ""


def test_policies_and_the_simulated_truth_read_as_words_rounded_for_people() -> None:
    from alumni_orchestration.campaigns.summary import policy_sentences, truth_sentences

    policies = pd.DataFrame({"campaign_id": "dues_reminder", "period": ["2026", "2026"],
                             "policy": ["propensity", "random"], "messages": [340.0, 1210.0], "incremental": [7.1, 4.0],
                             "per_100_messages": [2.0882, 0.3306], "per_100_low": [-1.0412, -0.5],
                             "per_100_high": [5.2171, 1.1]})
    assert policy_sentences(policies) == {"dues_reminder": (
        "2026 propensity: +2.1 per 100 messages (95% CI -1.0 to +5.2) at 340 messages; "
        "2026 random: +0.3 per 100 messages (95% CI -0.5 to +1.1) at 1,210 messages.")}
    truth = pd.DataFrame({"campaign_id": ["dues_reminder"], "cycle": ["2026-r1"], "audience": [510],
                          "uplift": [0.031], "uplift_ci_low": [-0.012], "uplift_ci_high": [0.074],
                          "true_uplift": [0.025], "covered": [True]})
    assert truth_sentences(truth) == {"dues_reminder 2026-r1": (
        "estimated +3.1 points (95% CI -1.2 points to +7.4 points); simulated truth +2.5 points: covered by the "
        "interval")}
