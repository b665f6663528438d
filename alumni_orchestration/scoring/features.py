"""Point-in-time features for the dues propensity model. Pure, vectorised pandas.

Every feature for a cutoff uses only what was known on that day: activity dated on or before it,
dues payments made on or before it, and member attributes that do not reveal the future (no
current status, no leaving date). A leakage test alters everything after a cutoff and checks that
no feature moves.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

SIGNALS = ("opens", "clicks", "events_registered", "events_attended", "dues_paid", "donations", "votes",
           "group_joins", "volunteer_starts")
HALF_LIVES = (90, 180)
WINDOW_DAYS = 365  # features look one year back at most, so every complete cycle sees the same span
SEGMENTS = ("students", "young_alumni", "mid_career", "late_career", "pre_retired", "retired")


def life_stage(age: pd.Series, years_since_graduation: pd.Series) -> pd.Series:
    """The same thresholds as the member_profile mart and the generator."""
    stage = np.select(
        [years_since_graduation < 0, (years_since_graduation <= 5) & (age < 32), age < 45, age < 55, age < 62],
        list(SEGMENTS[:5]), default=SEGMENTS[5])
    return pd.Series(stage, index=age.index)


def cycle_cutoff(cycle: int) -> dt.date:
    """Features for a dues cycle are taken the day before it opens (cycles are calendar years)."""
    return dt.date(cycle - 1, 12, 31)


def point_in_time_features(activity: pd.DataFrame, dues: pd.DataFrame, members: pd.DataFrame,
                           cutoff: dt.date) -> pd.DataFrame:
    """One row per member who existed on `cutoff`, indexed by member_id.

    activity: member_id, activity_date, signal, activity_count, amount_eur (marts.member_activity_daily)
    dues: member_id, dues_year, paid, tier, first_paid_on (marts.dues_history)
    members: member_id, birth_date, graduation_year, joined_on, left_on, consent_email,
             consent_newsletter, email_status
    """
    attributes = member_features(dues, members, cutoff)
    out = activity_features(activity, cutoff, attributes.index)
    for column in attributes.columns:
        out[column] = attributes[column]
    return out


def activity_features(activity: pd.DataFrame, cutoff: dt.date, index: pd.Index) -> pd.DataFrame:
    """The activity part of the features (ACTIVITY_FEATURES, in that order) for the members of `index`."""
    cut = pd.Timestamp(cutoff)
    out = pd.DataFrame(index=index)
    dates = pd.to_datetime(activity.activity_date)
    past = activity[(dates <= cut) & (dates > cut - pd.Timedelta(days=WINDOW_DAYS))]
    age_days = (cut - pd.to_datetime(past.activity_date)).dt.days.to_numpy()
    weight = np.where(past.signal.to_numpy() == "donations", past.amount_eur.astype(float).to_numpy() / 50.0,
                      past.activity_count.to_numpy(dtype=float))
    frame = pd.DataFrame({"member_id": past.member_id.to_numpy(), "signal": past.signal.to_numpy(),
                          "age": age_days, "weight": weight})
    for half_life in HALF_LIVES:
        frame[f"d{half_life}"] = frame.weight * np.exp(-np.log(2) * frame.age / half_life)
    frame["last365"] = np.where(frame.age < 365, frame.weight, 0.0)
    grouped = frame.groupby(["member_id", "signal"])[[f"d{h}" for h in HALF_LIVES] + ["last365"]].sum().unstack("signal")
    for signal in SIGNALS:
        for column in [f"d{h}" for h in HALF_LIVES] + ["last365"]:
            key = (column, signal)
            out[f"{signal}_{column}"] = grouped[key].reindex(out.index).fillna(0.0) if key in grouped.columns else 0.0
    last_seen = frame.groupby("member_id").age.min().reindex(out.index)
    out["days_since_last_activity"] = last_seen.fillna(WINDOW_DAYS).clip(upper=WINDOW_DAYS)
    out["active_days_365"] = frame[frame.age < 365].groupby("member_id").age.nunique().reindex(out.index).fillna(0)
    return out


def member_features(dues: pd.DataFrame, members: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """The features that do not come from activity (dues, age, tenure, consent, segment), one row per member
    who existed on `cutoff`, indexed by member_id. Only `paid` dues rows matter."""
    return MemberAttributes(dues, members).features(cutoff)


_NO_DAY = np.iinfo(np.int64).max  # a missing date: never on or before any cutoff


def _days(dates: pd.Series) -> np.ndarray:
    """Day numbers since 1970-01-01; missing dates as _NO_DAY."""
    values = pd.to_datetime(dates)
    days = values.to_numpy().astype("datetime64[D]").astype(np.int64)
    return np.where(values.isna().to_numpy(), _NO_DAY, days)


class MemberAttributes:
    """member_features for any number of cutoffs: the members and their paid dues as arrays, prepared once."""

    TIERS = ("reduced", "student", "lifetime")

    def __init__(self, dues: pd.DataFrame, members: pd.DataFrame) -> None:
        self.ids = members.set_index("member_id").index  # the index dtype set_index gives
        self.joined, self.left, self.birth = _days(members.joined_on), _days(members.left_on), _days(members.birth_date)
        self.left_missing = pd.isna(members.left_on).to_numpy()
        self.graduation = members.graduation_year.astype(float).to_numpy()
        self.consent_email = members.consent_email.astype(float).to_numpy()
        self.consent_newsletter = members.consent_newsletter.astype(float).to_numpy()
        self.email_valid = (members.email_status == "valid").astype(float).to_numpy()
        paid = dues[dues.paid.astype(bool)]
        position = self.ids.get_indexer(paid.member_id.to_numpy())
        paid = paid[position >= 0]
        self.dues_member = position[position >= 0]
        self.dues_year = paid.dues_year.to_numpy(dtype=np.int64)
        self.dues_paid_on = _days(paid.first_paid_on)
        tier = paid.tier.to_numpy(dtype=object)
        self.dues_tier = np.select([tier == t for t in self.TIERS], list(range(len(self.TIERS))), default=-1)

    def features(self, cutoff: dt.date) -> pd.DataFrame:
        t = (cutoff - dt.date(1970, 1, 1)).days
        present = (self.joined <= t) & (self.left_missing | (self.left > t))
        index = self.ids[present]
        n = len(self.ids)
        out = pd.DataFrame(index=index)

        known = (self.dues_year < cutoff.year + 1) & (self.dues_paid_on <= t)
        member, year, tier = self.dues_member[known], self.dues_year[known], self.dues_tier[known]

        def flag(rows: np.ndarray) -> np.ndarray:
            mark = np.zeros(n)
            mark[member[rows]] = 1.0
            return mark[present]

        for lag in (1, 2, 3):
            out[f"paid_lag{lag}"] = flag(year == cutoff.year + 1 - lag)
        latest = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(latest, member, year)
        last = year == latest[member]  # the latest known cycle's row (one row per member and cycle)
        out["last_tier_reduced"] = flag(last & (tier == 0))
        out["last_tier_student"] = flag(last & (tier == 1))
        out["ever_paid"] = flag(np.ones(len(member), dtype=bool))
        out["lifetime_member"] = flag(tier == 2)

        born = self.birth[present]
        age = pd.Series(np.where(born == _NO_DAY, np.nan, (t - born.astype(float)) / 365.25), index=index)
        since = pd.Series(cutoff.year + 1 - self.graduation[present], index=index)
        out["age"] = age.fillna(age.median())
        out["years_since_graduation"] = since
        out["tenure_years"] = (t - self.joined[present]) / 365.25
        out["consent_email"] = self.consent_email[present]
        out["consent_newsletter"] = self.consent_newsletter[present]
        out["email_valid"] = self.email_valid[present]
        out["segment"] = life_stage(out.age, since)
        for segment in SEGMENTS:
            out[f"segment_{segment}"] = (out.segment == segment).astype(float)
        return out


def feature_columns(features: pd.DataFrame) -> list[str]:
    return [c for c in features.columns if c != "segment"]


def training_set(activity: pd.DataFrame, dues: pd.DataFrame, members: pd.DataFrame, cycles: list[int]) -> pd.DataFrame:
    """Features as of each cycle's cutoff, with the label: paid within that cycle. Lifetime members are
    excluded (they have nothing left to pay)."""
    frames = []
    label = dues.set_index(["member_id", "dues_year"])
    for cycle in cycles:
        features = point_in_time_features(activity, dues, members, cycle_cutoff(cycle))
        features = features[features.lifetime_member == 0]
        keys = pd.MultiIndex.from_arrays([features.index, np.full(len(features), cycle)])
        paid = label.paid.reindex(keys).fillna(False).astype(int).to_numpy()
        covered = label.lifetime_covered.reindex(keys).fillna(False).astype(bool).to_numpy()
        frame = features.assign(cycle=cycle, paid=paid)[~covered]
        frames.append(frame)
    return pd.concat(frames) if frames else pd.DataFrame()


def complete_cycles(activity: pd.DataFrame, as_of: dt.date) -> list[int]:
    """Cycles whose features see a full year of provider history and whose outcome is known.

    The providers' history starts at the first opened or clicked email; a cycle's features need
    the whole previous year (its payments and activity), and its own year must be over.
    """
    provider = activity[activity.signal.isin(["opens", "clicks", "events_registered"])]
    if provider.empty:
        return []
    start = pd.to_datetime(provider.activity_date).min().date()
    first = start.year + 1 if start > dt.date(start.year, 1, 31) else start.year
    return list(range(first + 1, as_of.year))
