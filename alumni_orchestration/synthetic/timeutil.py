"""Vectorised time helpers: day numbers, unix seconds and Europe/Paris offsets without per-row tz calls."""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def day_from_number(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


def _last_sunday(year: int, month: int) -> dt.date:
    last = dt.date(year, month + 1, 1) - dt.timedelta(days=1) if month < 12 else dt.date(year, 12, 31)
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)


def paris_offset_seconds(ts: np.ndarray) -> np.ndarray:
    """UTC offset of Europe/Paris (3600 or 7200) at each unix timestamp (EU DST rule)."""
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    years = range(dt.datetime.fromtimestamp(int(ts.min()), dt.UTC).year - 1,
                  dt.datetime.fromtimestamp(int(ts.max()), dt.UTC).year + 2)
    offset = np.full(ts.shape, 3600, dtype=np.int64)
    for year in years:
        start = int(dt.datetime.combine(_last_sunday(year, 3), dt.time(1), dt.UTC).timestamp())
        end = int(dt.datetime.combine(_last_sunday(year, 10), dt.time(1), dt.UTC).timestamp())
        offset[(ts >= start) & (ts < end)] = 7200
    return offset


def paris_day_numbers(ts: np.ndarray) -> np.ndarray:
    ts = np.asarray(ts, dtype=np.int64)
    return (ts + paris_offset_seconds(ts)) // 86400


def paris_local_to_unix(day_numbers: np.ndarray, seconds_of_day: np.ndarray) -> np.ndarray:
    """Unix seconds of a Paris wall-clock time on the given days."""
    naive = np.asarray(day_numbers, dtype=np.int64) * 86400 + np.asarray(seconds_of_day, dtype=np.int64)
    return naive - paris_offset_seconds(naive - 3600)


def iso_dates(day_numbers: np.ndarray) -> list[str]:
    base = np.datetime64("1970-01-01", "D")
    return np.datetime_as_string(base + np.asarray(day_numbers, dtype=np.int64), unit="D").tolist()


def iso_utc(ts: np.ndarray) -> list[str]:
    """'2025-03-14T18:00:00Z' strings (Eventbrite style)."""
    arr = np.asarray(ts, dtype="int64").astype("datetime64[s]")
    return [s + "Z" for s in np.datetime_as_string(arr, unit="s").tolist()]


def iso_paris(ts: np.ndarray) -> list[str]:
    """'2025-03-14T19:00:00+01:00' strings (HelloAsso style)."""
    ts = np.asarray(ts, dtype=np.int64)
    off = paris_offset_seconds(ts)
    local = np.datetime_as_string((ts + off).astype("datetime64[s]"), unit="s").tolist()
    return [f"{s}+0{o // 3600}:00" for s, o in zip(local, off.tolist(), strict=True)]
