"""The digital lead's member lists: one row per member, with the columns a coordinator needs. Pure.

Every list carries the member's name, promo, region, segment, scores, consent and the reasons for the
scores, and a `list_filter` column naming the rule that chose its rows. Consent holds for any outreach
use: the email column is filled only for members who may be emailed (email consent, or newsletter consent
for the content audiences; a valid address; no SendGrid suppression); for the others it is empty and
`contact_note` says why. `ambassadors`, `volunteer_candidates`, `at_risk` and `dues_due` keep every member
their rule picks (the ambassador list is exactly the members flagged in scoring.member_scores; the team
may follow up in person), `interest_audiences` is a sending audience and keeps only contactable members.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

LISTS = ("ambassadors", "volunteer_candidates", "at_risk", "dues_due", "interest_audiences")
AT_RISK_SCORE, AT_RISK_TREND = 25.0, -8.0  # the re-engagement campaign's thresholds (campaigns.yaml)

FILTERS = {
    "ambassadors": "is_ambassador in scoring.member_scores (the most engaged 16% of current members, active in "
                   "at least two modes); email shown only with email consent",
    "volunteer_candidates": "volunteer_candidate in scoring.member_scores (top quarter for events and emails, no "
                            "volunteer role); email shown only with email consent",
    "at_risk": f"current members whose engagement fell by {-AT_RISK_TREND:g} points or more in 30 days, or who are "
               f"below {AT_RISK_SCORE:g} and falling; email shown only with email consent",
    "dues_due": "current members who have not paid the current dues cycle (lifetime members excluded), by "
                "propensity; email shown only with email consent",
    "interest_audiences": "members with newsletter consent, a valid address and no suppression, in the audience of "
                          "each of their top 3 topics, ranked by affinity",
}
PERSON_COLUMNS = ["member_id", "first_name", "last_name", "email", "promo", "region", "segment", "consent_email",
                  "consent_newsletter", "contactable", "contact_note"]
SCORE_COLUMNS = ["engagement_score", "engagement_percentile", "engagement_trend", "dues_propensity",
                 "dues_propensity_percentile"]
REASON_COLUMNS = ["engagement_reason", "dues_reasons"]


@dataclass(frozen=True)
class ListInputs:
    """people: member_id, first_name, last_name, email, graduation_year, region, consent_email,
    consent_newsletter, email_status, suppressed. scores: scoring.member_scores. reasons: member_id,
    engagement_reason, dues_reasons. dues: member_id, paid_current_cycle, current_dues_tier.
    interests: member_id, topic, affinity. reminders: member_id, reminders_sent, last_reminder_on."""

    people: pd.DataFrame
    scores: pd.DataFrame
    reasons: pd.DataFrame
    dues: pd.DataFrame
    interests: pd.DataFrame
    reminders: pd.DataFrame


def _contact(people: pd.DataFrame, consent_column: str) -> pd.DataFrame:
    valid = people.email_status.eq("valid")
    consent = people[consent_column].fillna(False).astype(bool)
    suppressed = people.suppressed.fillna(False).astype(bool)
    note = pd.Series("", index=people.index)
    note = note.mask(suppressed, "suppressed in SendGrid (bounce, spam report or unsubscribe)")
    note = note.mask(~valid, "no valid email address")
    note = note.mask(~consent, f"no {consent_column.removeprefix('consent_')} consent")
    out = people.assign(contactable=consent & valid & ~suppressed, contact_note=note)
    out["email"] = out.email.where(out.contactable, "")
    return out


def base_rows(inputs: ListInputs, consent_column: str = "consent_email") -> pd.DataFrame:
    """Current members (those in member_scores) with person, score and reason columns."""
    people = _contact(inputs.people.rename(columns={"graduation_year": "promo"}), consent_column)
    rows = inputs.scores[["member_id", "segment", *SCORE_COLUMNS, "is_ambassador", "volunteer_candidate",
                          "active_modes", "top_interests"]].merge(people, on="member_id", how="left")
    rows = rows.merge(inputs.reasons[["member_id", *REASON_COLUMNS]], on="member_id", how="left")
    rows[REASON_COLUMNS] = rows[REASON_COLUMNS].fillna("")
    rows["contactable"] = rows.contactable.fillna(False).astype(bool)
    return rows


def _finish(rows: pd.DataFrame, name: str, extra: list[str], order: list[str], ascending: list[bool]) -> pd.DataFrame:
    out = rows.sort_values(order, ascending=ascending, kind="stable")
    out = out[[*PERSON_COLUMNS, *SCORE_COLUMNS, *extra, *REASON_COLUMNS]].assign(list_filter=FILTERS[name])
    return out.reset_index(drop=True)


def ambassadors(inputs: ListInputs) -> pd.DataFrame:
    rows = base_rows(inputs)
    return _finish(rows[rows.is_ambassador.astype(bool)], "ambassadors", ["active_modes", "top_interests"],
                   ["engagement_score", "member_id"], [False, True])


def volunteer_candidates(inputs: ListInputs) -> pd.DataFrame:
    rows = base_rows(inputs)
    return _finish(rows[rows.volunteer_candidate.astype(bool)], "volunteer_candidates",
                   ["active_modes", "top_interests"], ["engagement_score", "member_id"], [False, True])


def at_risk_mask(scores: pd.DataFrame) -> pd.Series:
    """Falling engagement: down by 8 points or more in 30 days, or below 25 and falling."""
    trend = scores.engagement_trend
    falling = (trend <= AT_RISK_TREND) | ((scores.engagement_score < AT_RISK_SCORE) & (trend < 0))
    return falling.fillna(False).astype(bool)


def at_risk(inputs: ListInputs) -> pd.DataFrame:
    rows = base_rows(inputs)
    rows = rows[at_risk_mask(rows)].assign(score_30d_ago=lambda r: (r.engagement_score - r.engagement_trend).round(2))
    return _finish(rows, "at_risk", ["score_30d_ago"], ["engagement_trend", "member_id"], [True, True])


def dues_due(inputs: ListInputs) -> pd.DataFrame:
    rows = base_rows(inputs).merge(inputs.dues, on="member_id", how="left")
    unpaid = ~rows.paid_current_cycle.fillna(False).astype(bool) & rows.current_dues_tier.ne("lifetime")
    rows = rows[unpaid].merge(inputs.reminders, on="member_id", how="left")
    rows["reminders_sent"] = rows.reminders_sent.fillna(0).astype(int)
    return _finish(rows, "dues_due", ["current_dues_tier", "reminders_sent", "last_reminder_on"],
                   ["dues_propensity", "member_id"], [False, True])


def interest_audiences(inputs: ListInputs, top: int = 3) -> pd.DataFrame:
    rows = base_rows(inputs, consent_column="consent_newsletter")
    rows = rows[rows.contactable]
    ranked = inputs.interests.sort_values(["member_id", "affinity", "topic"], ascending=[True, False, True])
    chosen = ranked.groupby("member_id").head(top)
    out = chosen.merge(rows, on="member_id")
    out = out.sort_values(["topic", "affinity", "member_id"], ascending=[True, False, True], kind="stable")
    out["rank_in_topic"] = out.groupby("topic").cumcount() + 1
    out["affinity"] = out.affinity.round(3)
    out = out[["topic", "rank_in_topic", "affinity", *PERSON_COLUMNS, *SCORE_COLUMNS, *REASON_COLUMNS]]
    return out.assign(list_filter=FILTERS["interest_audiences"]).reset_index(drop=True)


BUILDERS = {"ambassadors": ambassadors, "volunteer_candidates": volunteer_candidates, "at_risk": at_risk,
            "dues_due": dues_due, "interest_audiences": interest_audiences}


def build_lists(inputs: ListInputs) -> dict[str, pd.DataFrame]:
    return {name: BUILDERS[name](inputs) for name in LISTS}


def list_counts(lists: dict[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Counts only (for metadata and logs): rows and contactable rows per list."""
    return {name: {"rows": len(frame), "contactable": int(frame.contactable.sum()) if len(frame) else 0}
            for name, frame in lists.items()}
