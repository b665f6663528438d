"""The weekly digest to the digital lead: what changed this week, in a few lines. Pure.

Counts only: no member's name or address is in the text unless the lead opted in (`names`), and even then
only names and promos, never emails. Links go to the exports folder and the Dagster UI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from alumni_orchestration.campaigns.summary import people_number
from alumni_orchestration.workbench.trends import one_year_before

WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class DigestFacts:
    as_of: dt.date
    new_ambassadors: int | None          # None: no snapshot a week earlier to compare with
    turned_at_risk: int | None
    ambassadors: int
    at_risk: int
    dues: dict[str, float]               # payers, eur, rate now / *_last_year, week_payers, week_payers_last_year
    campaigns: list[str]                 # one plain sentence per campaign and cycle
    failed_runs: list[str]               # "job (run id)"
    quality_warnings: list[str]          # failed checks, quarantined rows
    exports_folder: str
    ui_url: str
    new_ambassador_names: list[str] = field(default_factory=list)  # only when the lead opted in


def list_changes(history: pd.DataFrame, list_name: str, as_of: dt.date) -> tuple[set, set | None]:
    """(members on the list as of `as_of`, members who joined it since the latest snapshot at least a week
    older; None when there is no such snapshot). history: as_of, list_name, member_id."""
    rows = history[history.list_name == list_name]
    days = pd.to_datetime(rows.as_of).dt.date
    now = set(rows[days == as_of].member_id)
    earlier = sorted(d for d in days.unique() if d <= as_of - WEEK)
    if not earlier:
        return now, None
    return now, now - set(rows[days == earlier[-1]].member_id)


def dues_week(dues: pd.DataFrame, as_of: dt.date) -> dict[str, int]:
    """Payers of the cycle during the 7 days to as_of, and during the same days last year."""
    paid = dues[dues.paid.astype(bool) & dues.first_paid_on.notna()]
    day = pd.to_datetime(paid.first_paid_on).dt.date
    out = {}
    for key, end, year in (("week_payers", as_of, as_of.year),
                           ("week_payers_last_year", one_year_before(as_of), as_of.year - 1)):
        out[key] = int(((paid.dues_year == year) & (day > end - WEEK) & (day <= end)).sum())
    return out


def _dues_line(d: dict[str, float]) -> str:
    change = d["rate"] - d["rate_last_year"]
    return (f"Dues: {_count(d['payers'], 'member')} paid this cycle ({people_number(d['eur'], '€')}), "
            f"{100 * d['rate']:.0f}% of paying members against {100 * d['rate_last_year']:.0f}% on the same day "
            f"last year ({100 * change:+.0f} points; {people_number(d['eur_last_year'], '€')} then). This week: "
            f"{_count(d['week_payers'], 'payment')}, against {people_number(d['week_payers_last_year'])} "
            "in the same week last year.")


def _count(n: float, noun: str) -> str:
    return f"{people_number(n)} {noun}{'' if n == 1 else 's'}"


def compose_digest(f: DigestFacts) -> tuple[str, str]:
    """(subject, text)."""
    subject = f"[alumni] Weekly digest — week to {f.as_of.isoformat()}"

    def change(n: int | None, what: str) -> str:
        return f"{what}: no snapshot a week old yet to compare with" if n is None else f"{what}: {people_number(n)}"

    lines = [f"What changed in the week to {f.as_of.isoformat()}:", "",
             f"- {change(f.new_ambassadors, 'New ambassadors')} (now {people_number(f.ambassadors)}).",
             f"- {change(f.turned_at_risk, 'Members turned at-risk')} (now {people_number(f.at_risk)}).",
             f"- {_dues_line(f.dues)}"]
    if f.new_ambassador_names:
        lines.append("  New ambassadors: " + ", ".join(f.new_ambassador_names) + ".")
    lines += ["", "Campaigns:"] + ([f"- {s}" for s in f.campaigns] or ["- no campaign measured yet."])
    lines += ["", f"Failed runs this week: {len(f.failed_runs)}"] + [f"- {r}" for r in f.failed_runs]
    lines += ["", f"Data-quality warnings: {len(f.quality_warnings)}"] + [f"- {w}" for w in f.quality_warnings]
    lines += ["", f"Lists for the team (CSV and Excel): {f.exports_folder}",
              f"Dagster UI: {f.ui_url.rstrip('/')}/assets/workbench (lists), {f.ui_url.rstrip('/')}/runs (runs)", "",
              "This message holds counts only" + (", and the new ambassadors' names as you asked." if
                                                  f.new_ambassador_names else ": open the exports for the names.")]
    return subject, "\n".join(lines)
