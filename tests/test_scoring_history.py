"""The many-days score history path (scoring.history) against the per-day functions, on small synthetic data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from alumni_orchestration.scoring.engagement import (
    MODES,
    decayed_activity,
    engagement_as_of,
    engagement_from_decayed,
)
from alumni_orchestration.scoring.features import (
    SEGMENTS,
    SIGNALS,
    feature_columns,
    life_stage,
    member_features,
    point_in_time_features,
)
from alumni_orchestration.scoring.history import HISTORY_COLUMNS, DailyActivity, score_history

START = dt.date(2023, 1, 1)
# Consecutive days, a year boundary, a gap shorter than the 365-day window and one longer than it.
DAYS = [dt.date(2024, 12, 29) + dt.timedelta(days=i) for i in range(5)] + [dt.date(2025, 3, 1), dt.date(2025, 3, 2),
                                                                          dt.date(2026, 6, 30)]


def synthetic(members: int = 80, seed: int = 3) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, members + 1, dtype="int32")
    rows = 4000
    signals = np.array([*SIGNALS, "unsubscribes"])  # a signal no score weighs still makes an active day
    activity = pd.DataFrame({
        "member_id": rng.choice(ids[:-5], rows),  # the last five members never do anything
        "activity_date": pd.to_datetime(START) + pd.to_timedelta(rng.integers(0, 1300, rows), unit="D"),
        "signal": rng.choice(signals, rows, p=[0.3, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.1]),
        "activity_count": rng.integers(1, 4, rows).astype("int32"),
        "amount_eur": rng.integers(0, 300, rows).astype(float),
    }).drop_duplicates(["member_id", "activity_date", "signal"]).reset_index(drop=True)
    joined = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 2200, members), unit="D")
    left = pd.Series(pd.NaT, index=range(members), dtype="datetime64[us]")
    leavers = rng.random(members) < 0.15
    left[leavers] = joined[leavers] + pd.to_timedelta(rng.integers(30, 1500, leavers.sum()), unit="D")
    members_frame = pd.DataFrame({
        "member_id": ids,
        "birth_date": pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 20000, members), unit="D"),
        "graduation_year": rng.integers(1970, 2028, members).astype("int32"),
        "joined_on": joined, "left_on": left,
        "consent_email": rng.random(members) < 0.8, "consent_newsletter": rng.random(members) < 0.7,
        "email_status": rng.choice(["valid", "bounced"], members, p=[0.9, 0.1]),
    })
    dues = pd.DataFrame([(m, year) for m in ids for year in range(2021, 2027)], columns=["member_id", "dues_year"])
    dues["paid"] = rng.random(len(dues)) < 0.6
    dues["tier"] = rng.choice(["full", "reduced", "student", "lifetime"], len(dues), p=[0.6, 0.2, 0.15, 0.05])
    dues["first_paid_on"] = pd.to_datetime(dues.dues_year.astype(str) + "-01-01") + pd.to_timedelta(
        rng.integers(-40, 330, len(dues)), unit="D")
    dues.loc[~dues.paid, "first_paid_on"] = pd.NaT
    dues["lifetime_covered"] = False
    roles = pd.DataFrame({"member_id": rng.choice(ids, 15),
                          "started_on": pd.to_datetime("2023-06-01") + pd.to_timedelta(rng.integers(0, 900, 15), unit="D"),
                          "ended_on": pd.Series([pd.Timestamp("2025-02-01"), pd.NaT] * 7 + [pd.NaT])})
    memberships = pd.DataFrame({"member_id": rng.choice(ids, 30), "is_leader": rng.random(30) < 0.3,
                                "left_on": pd.Series([pd.Timestamp("2025-01-01"), pd.NaT, pd.NaT] * 10)})
    profile = pd.DataFrame({"member_id": ids[: members - 10],  # a few members are not current
                            "segment": rng.choice(list(SEGMENTS), members - 10),
                            "consent_newsletter": rng.random(members - 10) < 0.7,
                            "email_status": rng.choice(["valid", "bounced"], members - 10, p=[0.85, 0.15])})
    return {"activity": activity, "members": members_frame, "dues": dues, "roles": roles,
            "memberships": memberships, "profile": profile}


def reference_member_features(dues: pd.DataFrame, members: pd.DataFrame, cutoff: dt.date) -> pd.DataFrame:
    """The member and dues features as first written, with pandas group-bys and sets."""
    cut = pd.Timestamp(cutoff)
    m = members.set_index("member_id")
    joined, left = pd.to_datetime(m.joined_on), pd.to_datetime(m.left_on)
    present = (joined <= cut) & (left.isna() | (left > cut))
    m = m[present]
    out = pd.DataFrame(index=m.index)
    known = dues[(dues.dues_year < cutoff.year + 1) & dues.paid & (pd.to_datetime(dues.first_paid_on) <= cut)]
    for lag in (1, 2, 3):
        paid_ids = set(known.loc[known.dues_year == cutoff.year + 1 - lag, "member_id"])
        out[f"paid_lag{lag}"] = out.index.isin(list(paid_ids)).astype(float)
    last_tier = known.sort_values("dues_year").groupby("member_id").tier.last().reindex(out.index)
    out["last_tier_reduced"] = (last_tier == "reduced").astype(float)
    out["last_tier_student"] = (last_tier == "student").astype(float)
    out["ever_paid"] = out.index.isin(list(set(known.member_id))).astype(float)
    out["lifetime_member"] = out.index.isin(list(set(known.loc[known.tier == "lifetime", "member_id"]))).astype(float)
    age = (cut - pd.to_datetime(m.birth_date)).dt.days / 365.25
    since = cutoff.year + 1 - m.graduation_year.astype(float)
    out["age"] = age.fillna(age.median())
    out["years_since_graduation"] = since
    out["tenure_years"] = (cut - joined[present]).dt.days / 365.25
    out["consent_email"] = m.consent_email.astype(float)
    out["consent_newsletter"] = m.consent_newsletter.astype(float)
    out["email_valid"] = (m.email_status == "valid").astype(float)
    out["segment"] = life_stage(out.age, since)
    for segment in SEGMENTS:
        out[f"segment_{segment}"] = (out.segment == segment).astype(float)
    return out


def reference_history(data: dict[str, pd.DataFrame], days: list[dt.date], model, columns: list[str]) -> pd.DataFrame:
    """member_score_history's loop as first written: the per-day functions over the whole activity, day by day."""
    activity, dues, members, current = data["activity"], data["dues"], data["members"], data["profile"]
    frames = []
    for day in days:
        as_of = day + dt.timedelta(days=1)
        engagement = engagement_as_of(activity, data["roles"], data["memberships"], current, as_of)
        features = point_in_time_features(activity, dues, members, day).reindex(engagement.index)
        known = features.dropna(subset=columns)
        propensity = pd.Series(model.predict_proba(known[columns].to_numpy(dtype=float))[:, 1], index=known.index)
        paid = dues[(dues.dues_year == as_of.year) & dues.paid & (pd.to_datetime(dues.first_paid_on) <= pd.Timestamp(day))]
        frames.append(pd.DataFrame({
            "member_id": engagement.index, "as_of": as_of, "segment": engagement.segment.to_numpy(),
            "engagement_score": engagement.engagement_index.round(2).to_numpy(),
            "engagement_percentile": engagement.engagement_index.rank(pct=True).round(4).to_numpy(),
            "dues_propensity": propensity.reindex(engagement.index).to_numpy(),
            "paid_current_cycle": engagement.index.isin(list(set(paid.member_id))),
            "model_version": "v1",
        }))
    return pd.concat(frames, ignore_index=True)


def assert_same_history(expected: pd.DataFrame, actual: pd.DataFrame, near_tie_share: float = 0.0) -> None:
    """Equal; dues propensities to the last bit. Engagement scores and percentiles may differ only for a share of
    rows (members whose engagement is tied with another's up to the last bits, ranked either way), and by little."""
    assert list(actual.columns) == HISTORY_COLUMNS and len(actual) == len(expected)
    for column in ("member_id", "as_of", "segment", "paid_current_cycle", "model_version"):
        assert actual[column].tolist() == expected[column].tolist(), column
    np.testing.assert_array_equal(actual.dues_propensity.to_numpy(float), expected.dues_propensity.to_numpy(float),
                                  err_msg="dues_propensity")
    for column, step in (("engagement_score", 0.01), ("engagement_percentile", 0.0001)):
        diff = (actual[column] - expected[column]).abs().to_numpy()
        assert (diff > step + 1e-9).mean() <= near_tie_share, column
        assert diff.max() <= 0.2 if column == "engagement_score" else diff.max() <= 0.002, column


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return synthetic()


def test_member_features_equal_the_pandas_formulation(data) -> None:
    dues = data["dues"].copy()
    dues.loc[dues.index[:10], "first_paid_on"] = pd.NaT  # paid, date unknown: never known at any cutoff
    members = data["members"].copy()
    members.loc[3, "birth_date"] = pd.NaT  # filled with the median age
    for cutoff in (dt.date(2023, 12, 31), dt.date(2024, 7, 14), dt.date(2025, 12, 31), dt.date(2026, 6, 30)):
        pd.testing.assert_frame_equal(member_features(dues, members, cutoff),
                                      reference_member_features(dues, members, cutoff))


def test_daily_activity_equals_the_per_day_functions(data) -> None:
    activity = data["activity"]
    ids = pd.Index(data["profile"].member_id)
    daily = DailyActivity(activity, ids)
    for day in DAYS:
        as_of = day + dt.timedelta(days=1)
        decayed, frequency = daily.decayed(as_of)
        expected_decayed, expected_frequency = decayed_activity(activity, as_of)
        expected_decayed = expected_decayed.reindex(index=ids, columns=list(SIGNALS)).fillna(0.0)
        np.testing.assert_allclose(decayed[list(SIGNALS)].to_numpy(), expected_decayed.to_numpy(), rtol=1e-12, atol=1e-12)
        assert frequency.tolist() == expected_frequency.reindex(ids).fillna(0).astype(int).tolist()
        mine = engagement_from_decayed(decayed, frequency, data["roles"], data["memberships"], data["profile"], as_of)
        expected = engagement_as_of(activity, data["roles"], data["memberships"], data["profile"], as_of)
        for column in (*MODES, "frequency_365", "active_modes", "engagement_raw", "engagement_index"):
            np.testing.assert_allclose(mine[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9,
                                       atol=1e-9, err_msg=f"{day} {column}")
        features = daily.features(day)
        expected_features = point_in_time_features(activity, data["dues"], data["members"], day)
        expected_features = expected_features[list(features.columns)].reindex(ids)
        present = expected_features.notna().all(axis=1).to_numpy()
        assert present.sum() > 20
        # To the last bit: the dues model's trees split on values many members share.
        np.testing.assert_array_equal(features.to_numpy()[present], expected_features.to_numpy()[present],
                                      err_msg=str(day))
        assert (features.active_days_365 > 0).any() and (features.days_since_last_activity < 365).any()


def test_daily_activity_wants_increasing_days(data) -> None:
    daily = DailyActivity(data["activity"], pd.Index(data["profile"].member_id))
    daily.features(dt.date(2025, 1, 1))
    with pytest.raises(ValueError, match="increasing"):
        daily.features(dt.date(2024, 12, 31))


def test_score_history_equals_the_day_by_day_loop(data) -> None:
    training = point_in_time_features(data["activity"], data["dues"], data["members"], dt.date(2024, 12, 31))
    columns = feature_columns(training)
    label = training.index.isin(data["dues"].member_id[(data["dues"].dues_year == 2025) & data["dues"].paid])
    model = LogisticRegression(max_iter=2000).fit(training[columns].to_numpy(), label)
    expected = reference_history(data, DAYS, model, columns)
    actual = pd.concat(score_history(data["activity"], data["roles"], data["memberships"], data["profile"],
                                     data["dues"], data["members"], DAYS, model, columns, "v1"), ignore_index=True)
    assert actual.dues_propensity.notna().sum() > 0.5 * len(actual)
    assert actual.dues_propensity.isna().any()  # members who had not joined yet, or had left, have no propensity
    assert_same_history(expected, actual)
