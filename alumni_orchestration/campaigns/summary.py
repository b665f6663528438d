"""Each campaign's result in plain language, numbers rounded for people, and how to re-measure it. Pure.

- When the uplift's 95% interval spans zero the result is *inconclusive*; the sentence says whether the
  control group is too small and how large an audience would detect the effect (two-sided 5% test, 80%
  power, the campaign's own control share). The effect to detect is the observed uplift when it is at
  least 1 point, else MIN_EFFECT_POINTS.
- ROI is (value of the incremental members - cost of the emails) / cost: each incremental member is
  valued at what recruiting one costs (Costs.acquire_member_eur).
- Late webhook events and payments arrive for days: the backfill range runs from the first send to the
  last send plus the outcome window (never past `today`), with the command that runs it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

Z_ALPHA, Z_POWER = 1.959963984540054, 0.8416212335729143  # two-sided 5%, 80% power
MIN_EFFECT_POINTS = 5.0
BACKFILL_SELECTION = ("group:sources or group:staging or group:intermediate or group:marts "
                      "or key:campaigns/campaign_results")


def people_number(value: float, unit: str = "") -> str:
    """1260.4 -> '1,260', 3.25 -> '3.3', 0.004 -> '0'; with a unit after it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:,.1f}"
    text = "0" if text in ("-0", "-0.0", "0.0") else text
    return f"{text} {unit}".strip()


def points(share: float) -> str:
    return f"{100 * share:+.1f} points"


def audience_needed(p_control: float, effect: float, control_share: float) -> int:
    """Total audience (both arms) for a two-proportion test to detect `effect` (a share) with this control share."""
    p_control = min(max(p_control, 0.01), 0.99)
    p_treated = min(max(p_control + effect, 0.01), 0.99)
    variance = p_treated * (1 - p_treated) / (1 - control_share) + p_control * (1 - p_control) / control_share
    return int(math.ceil((Z_ALPHA + Z_POWER) ** 2 * variance / effect ** 2))


@dataclass(frozen=True)
class Window:
    first_send: dt.date
    last_send: dt.date


def backfill_range(window: Window, outcome_window_days: int, today: dt.date) -> tuple[str, str]:
    end = min(window.last_send + dt.timedelta(days=outcome_window_days), today)
    return window.first_send.isoformat(), max(end, window.first_send).isoformat()


def backfill_command(first: str, last: str) -> str:
    return (f"dagster asset materialize -m alumni_orchestration.definitions --select '{BACKFILL_SELECTION}' "
            f"--partition-range {first}...{last}")


def verdict(t: pd.Series, c: pd.Series | None, unit_noun: str) -> str:
    """The first sentence: worked / backfired / inconclusive (with what would settle it)."""
    if c is None or int(c.audience) == 0 or pd.isna(t.uplift):
        return "not measurable: no control group was held out"
    if t.uplift_ci_low > 0:
        return (f"worked: {points(t.uplift)} of {unit_noun} (95% CI {points(t.uplift_ci_low)} to "
                f"{points(t.uplift_ci_high)})")
    if t.uplift_ci_high < 0:
        return (f"backfired: {points(t.uplift)} of {unit_noun} (95% CI {points(t.uplift_ci_low)} to "
                f"{points(t.uplift_ci_high)})")
    total = int(t.audience) + int(c.audience)
    control_share = int(c.audience) / total
    effect = abs(t.uplift) if abs(t.uplift) >= 0.01 else MIN_EFFECT_POINTS / 100
    needed = audience_needed(float(c.retention_rate), effect, control_share)
    reason = (f"the control group is too small ({people_number(int(c.audience))} members)"
              if int(c.audience) < needed * control_share else
              f"the interval ({points(t.uplift_ci_low)} to {points(t.uplift_ci_high)}) includes no effect")
    return (f"inconclusive: {reason}; an audience of about {people_number(needed)} is needed to detect an effect of "
            f"{100 * effect:.0f} points")


def campaign_sentence(rows: pd.DataFrame, acquire_member_eur: float) -> str:
    by_arm = rows.set_index("arm")
    t = by_arm.loc["treatment"] if "treatment" in by_arm.index else None
    c = by_arm.loc["control"] if "control" in by_arm.index else None
    if t is None:
        return "no message sent (everyone was held out)"
    payments = str(rows.campaign_id.iloc[0]).startswith("dues")
    unit_noun = "dues paid" if payments else "members re-engaged"
    parts = [verdict(t, c, unit_noun)]
    if c is not None and int(c.audience) and not pd.isna(t.uplift):
        extra_revenue = (t.revenue_eur / t.audience - c.revenue_eur / c.audience) * t.audience if t.audience else 0.0
        extra = people_number(float(t.incremental_retained), "extra payments" if payments else "members re-engaged")
        money = f", {people_number(extra_revenue, '€')}" if payments else ""
        parts.append(f"it brought about {extra}{money} for {people_number(int(t.sent))} messages "
                     f"(cost {people_number(float(t.cost_eur), '€')})")
        if not pd.isna(t.roi):
            parts.append(f"ROI {people_number(float(t.roi))}: each 1 € spent on emails returned about "
                         f"{people_number(float(t.roi) + 1, '€')} of members kept, valued at "
                         f"{people_number(acquire_member_eur, '€')} each (what recruiting one costs)")
        else:
            parts.append("no ROI: no extra member was measured")
    return "; ".join(parts) + "."


def campaign_summaries(results: pd.DataFrame, windows: dict[tuple[str, str], Window], outcome_window_days: int,
                       today: dt.date, acquire_member_eur: float) -> pd.DataFrame:
    """One row per campaign and cycle: summary, backfill range and command. results: campaign_results rows."""
    rows = []
    # A stratum's arms are drawn with their own probabilities (targeted: the holdout; explored: the exploration
    # arm), so each stratum is measured on its own; results without strata are one targeted stratum.
    results = results if "stratum" in results.columns else results.assign(stratum="targeted")
    for (campaign_id, cycle, stratum), group in results.groupby(["campaign_id", "cycle", "stratum"], sort=True):
        window = windows.get((campaign_id, cycle))
        first, last = backfill_range(window, outcome_window_days, today) if window else ("", "")
        sentence = campaign_sentence(group, acquire_member_eur)
        rows.append({"campaign_id": campaign_id, "cycle": cycle, "stratum": stratum,
                     "summary": sentence if stratum == "targeted" else f"exploration arm: {sentence}",
                     "backfill_from": first, "backfill_to": last,
                     "backfill_command": backfill_command(first, last) if window else ""})
    return pd.DataFrame(rows, columns=["campaign_id", "cycle", "stratum", "summary", "backfill_from", "backfill_to",
                                       "backfill_command"])


def summaries_markdown(summaries: pd.DataFrame) -> str:
    if summaries.empty:
        return "_no campaign sent yet_"
    lines = []
    for r in summaries.itertuples():
        lines.append(f"**{r.campaign_id} {r.cycle}**: {r.summary}")
        if r.backfill_command:
            lines.append(f"  After it, backfill {r.backfill_from} .. {r.backfill_to}: `{r.backfill_command}` "
                         "(or in the UI: campaign_window_job, that partition range).")
        lines.append("")
    return "\n".join(lines).strip()


def policy_sentences(policies: pd.DataFrame) -> dict[str, str]:
    """Per campaign, each targeting policy's extra outcomes per 100 messages in one line of words (the UI shows
    a text value whole and wraps it; a wide Markdown table would widen the whole metadata table)."""
    out = {}
    for campaign_id, rows in policies.groupby("campaign_id", sort=True):
        parts = [f"{r.period} {r.policy}: {r.per_100_messages:+.1f} per 100 messages (95% CI {r.per_100_low:+.1f} to "
                 f"{r.per_100_high:+.1f}) at {people_number(float(r.messages))} messages"
                 for r in rows.itertuples()]
        out[str(campaign_id)] = "; ".join(parts) + "."
    return out


def truth_sentences(truth: pd.DataFrame) -> dict[str, str]:
    """Per campaign and cycle (a simulated association only): the estimate beside the generator's true uplift."""
    return {f"{r.campaign_id} {r.cycle}": (
        f"estimated {points(r.uplift)} (95% CI {points(r.uplift_ci_low)} to {points(r.uplift_ci_high)}); simulated "
        f"truth {points(r.true_uplift)}: {'covered' if r.covered else 'NOT covered'} by the interval")
        for r in truth.itertuples()}
