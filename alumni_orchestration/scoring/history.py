"""Score history for many consecutive days in one pass over the activity.

`engagement_as_of` and `point_in_time_features` each read the whole activity mart for one day: a
history of 120 days computed with them reads it 240 times, with string comparisons, date parsing and
group-bys over every row each time. Here the activity is encoded once as arrays (member position, day
number, signal code, weight), and:
- engagement's decayed sums (over all history) are carried from one day to the next: decayed by one
  day's factor, plus the new day's rows;
- active days (engagement's frequency_365, the features' active_days_365) and the last active day are
  counted incrementally;
- the dues features are recomputed each day from the rows of their 365-day window only, exactly as
  activity_features does (same arithmetic, same order of summation), so they are equal to the last bit;
- the member and dues attributes come from features.MemberAttributes, prepared once.

tests/test_scoring_history.py and tests/test_scoring.py hold the results to those of the per-day functions.
Engagement is equal to float rounding; its rank can differ only between members tied up to the last bits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from alumni_orchestration.scoring.changed_rows import ChangedRowsPredictor
from alumni_orchestration.scoring.engagement import dbt_vars, engagement_from_decayed
from alumni_orchestration.scoring.features import HALF_LIVES, SIGNALS, WINDOW_DAYS, MemberAttributes

ACTIVITY_COLUMNS = ["member_id", "activity_date", "signal", "activity_count", "amount_eur"]
HISTORY_COLUMNS = ["member_id", "as_of", "segment", "engagement_score", "engagement_percentile", "dues_propensity",
                   "paid_current_cycle", "model_version"]
FREQUENCY_DAYS = 365  # the engagement mart's frequency_365: distinct active days of age 0 to 364
_EPOCH = dt.date(1970, 1, 1)
_LN2 = np.log(2)


def day_number(day: dt.date) -> int:
    return (day - _EPOCH).days


def _day_numbers(dates: pd.Series) -> np.ndarray:
    return pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


@dataclass(frozen=True)
class EncodedActivity:
    """member_activity_daily as arrays, in the mart's row order: the member's position in `ids`, the day number,
    the signal's position in `signals` (-1 for a signal no score uses: it still counts as an active day) and the
    row's weight (activity_count, or amount_eur / 50 for donations)."""

    ids: pd.Index
    signals: tuple[str, ...]
    member: np.ndarray
    day: np.ndarray
    signal: np.ndarray
    value: np.ndarray

    @cached_property
    def active_days(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (member, day) pairs, sorted by day."""
        key = np.unique(self.day * len(self.ids) + self.member)
        return key % len(self.ids), key // len(self.ids)


def encode_activity(activity: pd.DataFrame, ids: pd.Index, signals: Sequence[str]) -> EncodedActivity:
    """Keeps the rows of the members in `ids` (unique member ids)."""
    position = ids.get_indexer(activity.member_id.to_numpy())
    keep = position >= 0
    names = activity.signal.to_numpy()[keep].astype(object)
    code = pd.Index(list(signals)).get_indexer(names).astype(np.int8)
    amount = activity.amount_eur.to_numpy(dtype=float, na_value=np.nan)[keep]
    value = np.where(names == "donations", amount / 50.0,
                     activity.activity_count.to_numpy(dtype=float, na_value=np.nan)[keep])
    return EncodedActivity(ids=ids, signals=tuple(signals), member=position[keep].astype(np.int64),
                           day=_day_numbers(activity.activity_date[keep]), signal=code, value=value)


class _RunningSums:
    """Per member and signal, the sum of weight × 2^(-age / half_life) over every row dated up to t, as t moves
    forward: decayed by the days passed, plus the new days' rows. (A missing weight adds nothing, as in a pandas
    sum.)"""

    def __init__(self, rows: EncodedActivity, half_lives: np.ndarray) -> None:
        used = np.flatnonzero(rows.signal >= 0)
        used = used[np.argsort(rows.day[used], kind="stable")]
        self.n_signals = len(rows.signals)
        self.flat = rows.member[used] * self.n_signals + rows.signal[used]
        self.day, self.value = rows.day[used], np.nan_to_num(rows.value[used])
        self.half_life = np.asarray(half_lives, dtype=float)[rows.signal[used]]  # per row
        self.factor_half_lives = np.asarray(half_lives, dtype=float)
        self.sums = np.zeros(len(rows.ids) * self.n_signals)
        self.t: int | None = None

    def advance(self, t: int) -> None:
        if self.t is not None and t < self.t:
            raise ValueError("days must be increasing")
        start = int(np.searchsorted(self.day, self.t, side="right")) if self.t is not None else 0
        stop = int(np.searchsorted(self.day, t, side="right"))
        if self.t is not None:
            self.sums.reshape(-1, self.n_signals)[...] *= np.exp(-_LN2 * (t - self.t) / self.factor_half_lives)
        rows = slice(start, stop)
        np.add.at(self.sums, self.flat[rows], self.value[rows] * np.exp(-_LN2 * (t - self.day[rows]) / self.half_life[rows]))
        self.t = t


class _ActiveDays:
    """Per member, the number of distinct active days in (t - window, t], and the last active day up to t."""

    def __init__(self, rows: EncodedActivity, window: int) -> None:
        self.member, self.day = rows.active_days
        self.window = window
        self.count = np.zeros(len(rows.ids), dtype=np.int64)
        self.last = np.full(len(rows.ids), np.iinfo(np.int64).min // 2)
        self.t: int | None = None

    def advance(self, t: int) -> None:
        start = lambda d: int(np.searchsorted(self.day, d, side="right"))  # noqa: E731 - first pair dated after d
        if self.t is not None and t < self.t:
            raise ValueError("days must be increasing")
        if self.t is None or t - self.t >= self.window:
            self.count = np.bincount(self.member[start(t - self.window):start(t)], minlength=len(self.count))
        else:
            self.count += np.bincount(self.member[start(self.t):start(t)], minlength=len(self.count))
            self.count -= np.bincount(self.member[start(self.t - self.window):start(t - self.window)],
                                      minlength=len(self.count))
        seen = slice(start(self.t) if self.t is not None else 0, start(t))
        np.maximum.at(self.last, self.member[seen], self.day[seen])
        self.t = t


def _signals() -> tuple[str, ...]:
    half = dbt_vars()["half_life_days"]
    return (*SIGNALS, *[s for s in half if s not in SIGNALS])


class DailyActivity:
    """Activity quantities for increasing days: engagement's decayed sums and active days as of a day
    (what engagement.decayed_activity gives), and the activity features with a cutoff (features.activity_features).

    The features are recomputed each day from the rows of their 365-day window only, with the same arithmetic and
    the same order of summation as activity_features, so that they are equal to the last bit: the dues model's
    trees split on values that many members share, and a difference in the last bit would send some of them down
    the other branch. The engagement sums are carried from day to day; they only enter a rank."""

    def __init__(self, activity: pd.DataFrame, ids: pd.Index) -> None:
        self.ids = pd.Index(ids)
        self.signals = _signals()
        self.rows = encode_activity(activity, self.ids, self.signals)
        half = dbt_vars()["half_life_days"]
        self._engagement = _RunningSums(self.rows, np.array([float(half.get(s, np.nan)) for s in self.signals]))
        self._frequency = _ActiveDays(self.rows, FREQUENCY_DAYS)
        self._feature_days = _ActiveDays(self.rows, WINDOW_DAYS)
        self._used = self.rows.signal >= 0
        self._flat = self.rows.member * len(self.signals) + self.rows.signal

    def decayed(self, as_of: dt.date) -> tuple[pd.DataFrame, pd.Series]:
        """What engagement.decayed_activity returns for this day, for every member of ids (zeros included)."""
        t = day_number(as_of)
        self._engagement.advance(t)
        self._frequency.advance(t)
        decayed = pd.DataFrame(self._engagement.sums.reshape(len(self.ids), len(self.signals)), index=self.ids,
                               columns=list(self.signals))
        return decayed, pd.Series(self._frequency.count, index=self.ids)

    def features(self, cutoff: dt.date) -> pd.DataFrame:
        """What features.activity_features returns for this cutoff and ids."""
        t = day_number(cutoff)
        self._feature_days.advance(t)
        day = self.rows.day
        rows = np.flatnonzero((day <= t) & (day > t - WINDOW_DAYS) & self._used)  # in the mart's order
        frame = pd.DataFrame({"key": self._flat[rows], "age": t - day[rows], "weight": self.rows.value[rows]})
        names = [f"d{h}" for h in HALF_LIVES] + ["last365"]
        for half_life in HALF_LIVES:  # as in activity_features
            frame[f"d{half_life}"] = frame.weight * np.exp(-np.log(2) * frame.age / half_life)
        frame["last365"] = np.where(frame.age < 365, frame.weight, 0.0)
        grouped = frame.groupby("key")[names].sum()
        keys = grouped.index.to_numpy()
        out = {}
        for name in names:
            sums = np.zeros(len(self.ids) * len(self.signals))
            sums[keys] = grouped[name].to_numpy()
            out[name] = sums.reshape(len(self.ids), len(self.signals))
        columns = {f"{signal}_{name}": out[name][:, s] for s, signal in enumerate(SIGNALS) for name in names}
        columns["days_since_last_activity"] = np.minimum(t - self._feature_days.last, WINDOW_DAYS).astype(float)
        columns["active_days_365"] = self._feature_days.count.astype(float)
        return pd.DataFrame(columns, index=self.ids)


def score_history(activity: pd.DataFrame, roles: pd.DataFrame, memberships: pd.DataFrame, current: pd.DataFrame,
                  dues: pd.DataFrame, members: pd.DataFrame, days: Sequence[dt.date], model, columns: list[str],
                  model_version: str) -> Iterator[pd.DataFrame]:
    """The score snapshot of each day (as of the next morning), in increasing order of days, one frame per day
    with HISTORY_COLUMNS, for the members of `current` (member_id, segment, consent_newsletter, email_status)."""
    ids = pd.Index(current.member_id)
    daily = DailyActivity(activity, ids)
    paid_dues = dues[dues.paid.astype(bool) & dues.member_id.isin(ids)]
    paid_on = pd.to_datetime(paid_dues.first_paid_on)
    attributes = MemberAttributes(paid_dues, members)
    predictor = ChangedRowsPredictor(model, len(ids), len(columns))  # predicts only the members that can change
    for day in sorted(days):
        as_of = day + dt.timedelta(days=1)
        engagement = engagement_from_decayed(*daily.decayed(as_of), roles, memberships, current, as_of)
        features = daily.features(day).join(attributes.features(day), how="left")
        features = features.reindex(engagement.index)
        known = features.dropna(subset=columns)
        propensity = pd.Series(predictor.predict(ids.get_indexer(known.index), known[columns].to_numpy(dtype=float)),
                               index=known.index)
        paid = paid_dues.member_id[(paid_dues.dues_year == as_of.year) & (paid_on <= pd.Timestamp(day))]
        yield pd.DataFrame({
            "member_id": engagement.index, "as_of": as_of, "segment": engagement.segment.to_numpy(),
            "engagement_score": engagement.engagement_index.round(2).to_numpy(),
            "engagement_percentile": engagement.engagement_index.rank(pct=True).round(4).to_numpy(),
            "dues_propensity": propensity.reindex(engagement.index).to_numpy(),
            "paid_current_cycle": engagement.index.isin(paid.to_numpy()),
            "model_version": model_version,
        })
