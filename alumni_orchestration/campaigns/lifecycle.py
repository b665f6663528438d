"""Lifecycle campaigns: messages triggered by a date of the member's life rather than by a score. Pure.

Three occasions, each a campaign of kind `lifecycle` in campaigns.yaml (its `lifecycle:` block):

- `birthday`: on the member's birthday (29 February: the 28th in other years); cycle = the year, so at most
  one greeting per member and year through the ledger's unique key;
- `anniversary`: on one day of the year (`on`, month-day), the classes whose graduation was a round number of
  years ago (`round_years`), with the class's upcoming events and a link to its group; cycle = the year;
- `welcome`: `steps_days` days after joining (first days, first month), one step each; cycle = the joining
  year and the step ("2026-w1"), its period the joining year so a member keeps one arm through the sequence.

A wave selects the occasions that fell after the previous score snapshot and up to its own day: a missed
nightly run is caught up by the next wave, at most `catch_up_days` late. `send_time` (Paris) is the earliest
moment of the wave's day the message may leave; quiet hours still apply on top (send_window.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from alumni_orchestration.campaigns.send_window import PARIS

if TYPE_CHECKING:
    from alumni_orchestration.campaigns.definitions import Campaign

OCCASIONS = ("birthday", "anniversary", "welcome")
# What a lifecycle selection reads of each member, beside the score snapshot.
MEMBER_DATE_COLUMNS = ("birth_date", "graduation_year", "joined_on")
# What a lifecycle message adds to a recipient (content.RECIPIENT_COLUMNS).
LIFECYCLE_RECIPIENT_COLUMNS = ("graduation_year", "class_events")
SELECTED_COLUMNS = ["member_id", "step", "cycle", "period", "trigger", "score", "eligible_pool"]


@dataclass(frozen=True)
class Lifecycle:
    occasion: str
    send_time: str | None = "08:00"        # local (Paris) time of the wave's day before which nothing leaves
    round_years: tuple[int, ...] = (10, 20, 25, 50)   # anniversary: years since graduation
    on: str = "10-01"                      # anniversary: the day of the year it goes out (month-day)
    steps_days: tuple[int, ...] = (1, 30)  # welcome: days after joining, one step each
    catch_up_days: int = 7                 # an occasion missed by this many days is skipped, not sent late
    group_link: str = ""                   # anniversary: the class's group, "{promo}" replaced
    max_events: int = 3                    # anniversary: upcoming class events shown

    def __post_init__(self) -> None:
        if self.occasion not in OCCASIONS:
            raise ValueError(f"lifecycle occasion must be one of {OCCASIONS}, not {self.occasion!r}")
        if not self.round_years or min(self.round_years) <= 0:
            raise ValueError("round_years: positive numbers of years")
        if not self.steps_days or list(self.steps_days) != sorted(set(self.steps_days)):
            raise ValueError("steps_days: increasing days after joining")
        month, day = (int(x) for x in self.on.split("-"))
        dt.date(2000, month, day)  # raises on an impossible month-day

    def not_before(self, as_of: dt.date) -> dt.datetime | None:
        """The earliest send moment of the wave of `as_of`: its send_time, Paris time."""
        if not self.send_time:
            return None
        return dt.datetime.combine(as_of, dt.time.fromisoformat(self.send_time), PARIS)


def lifecycle_from(spec: dict | None) -> Lifecycle | None:
    if not spec:
        return None
    spec = dict(spec)
    for key in ("round_years", "steps_days"):
        if key in spec:
            spec[key] = tuple(int(x) for x in spec[key])
    return Lifecycle(**spec)


def window_days(as_of: dt.date, previous: dt.date, catch_up_days: int) -> list[dt.date]:
    """The days a wave covers: after the previous snapshot, up to its own day, at most catch_up_days back."""
    first = max(previous + dt.timedelta(days=1), as_of - dt.timedelta(days=catch_up_days - 1))
    return [first + dt.timedelta(days=i) for i in range((as_of - first).days + 1)]


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, errors="coerce").dt.date


def birthday_rows(members: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    births = pd.to_datetime(members.birth_date, errors="coerce")
    leap_day = (births.dt.month == 2) & (births.dt.day == 29)
    frames = []
    for day in days:
        leap_year = calendar.isleap(day.year)
        on_day = (births.dt.month == day.month) & (births.dt.day == day.day) & ~(leap_day & ~leap_year)
        if (day.month, day.day) == (2, 28) and not leap_year:
            on_day |= leap_day
        frames.append(pd.DataFrame({"member_id": members.member_id[on_day.to_numpy()], "day": day,
                                    "cycle": str(day.year), "period": str(day.year), "step": 1,
                                    "trigger": "birthday"}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def anniversary_rows(members: pd.DataFrame, days: list[dt.date], lifecycle: Lifecycle) -> pd.DataFrame:
    month, day_of_month = (int(x) for x in lifecycle.on.split("-"))
    rows = []
    for day in days:
        if (day.month, day.day) != (month, day_of_month):
            continue
        for years in lifecycle.round_years:
            promo = members[pd.to_numeric(members.graduation_year, errors="coerce") == day.year - years]
            rows += [{"member_id": m, "day": day, "cycle": str(day.year), "period": str(day.year), "step": 1,
                      "trigger": f"promo {day.year - years}: {years} years"} for m in promo.member_id]
    return pd.DataFrame(rows)


def welcome_rows(members: pd.DataFrame, days: list[dt.date], lifecycle: Lifecycle) -> pd.DataFrame:
    joined = _dates(members.joined_on)
    covered = set(days)
    rows = []
    for m, j in zip(members.member_id, joined, strict=True):
        if not isinstance(j, dt.date):
            continue
        for step, offset in enumerate(lifecycle.steps_days, start=1):
            day = j + dt.timedelta(days=offset)
            if day in covered:
                rows.append({"member_id": m, "day": day, "cycle": f"{j.year}-w{step}", "period": str(j.year),
                             "step": step, "trigger": f"welcome, day {offset} after joining"})
    return pd.DataFrame(rows)


def lifecycle_selection(campaign: Campaign, history: pd.DataFrame, ledger: pd.DataFrame, as_of: dt.date,
                        previous: pd.Timestamp) -> pd.DataFrame:
    """The members whose occasion falls within the wave's days. history: the wave's snapshot of every member
    with their MEMBER_DATE_COLUMNS. The ledger's unique key, not this selection, guarantees once per cycle."""
    lifecycle = campaign.lifecycle
    if lifecycle is None:
        raise ValueError(f"campaign {campaign.campaign_id}: kind lifecycle needs a `lifecycle:` block")
    today = history[pd.to_datetime(history.as_of) == pd.Timestamp(as_of)].drop_duplicates("member_id")
    days = window_days(as_of, pd.Timestamp(previous).date(), lifecycle.catch_up_days)
    if lifecycle.occasion == "birthday":
        found = birthday_rows(today, days)
    elif lifecycle.occasion == "anniversary":
        found = anniversary_rows(today, days, lifecycle)
    else:
        found = welcome_rows(today, days, lifecycle)
    if found.empty:
        return pd.DataFrame(columns=SELECTED_COLUMNS)
    found = found.sort_values(["member_id", "step"]).drop_duplicates(["member_id", "cycle"])
    return found.assign(score=float("nan"), eligible_pool=False)[SELECTED_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# What a lifecycle message says: the class's upcoming events, its group, the welcome step
# --------------------------------------------------------------------------------------------

def class_events(events: pd.DataFrame, registrations: pd.DataFrame, as_of: dt.date, limit: int) -> dict[int, list]:
    """Upcoming Eventbrite events per class (promo). An event belongs to a class when its name mentions the
    promo year or when members of that promo registered for it (Eventbrite's "Promo" question), the most
    registered first. events: event_id, event_name, start_at; registrations: event_id, promo."""
    events = events.assign(start_at=pd.to_datetime(events.start_at, utc=True))  # naive: Eventbrite's UTC
    upcoming = events[events.start_at.dt.tz_convert(PARIS).dt.date > as_of]
    if upcoming.empty:
        return {}
    counts = (registrations.dropna(subset=["promo"]).astype({"promo": int})
              .groupby(["promo", "event_id"]).size().rename("registered").reset_index())
    counts = counts[counts.event_id.isin(upcoming.event_id)]
    out: dict[int, list] = {}
    for promo, rows in counts.sort_values(["promo", "registered"], ascending=[True, False]).groupby("promo"):
        out[int(promo)] = rows.event_id.tolist()
    for event_id, name in zip(upcoming.event_id, upcoming.event_name.fillna(""), strict=True):
        for promo in {int(y) for y in pd.Series(name).str.findall(r"\b(19\d\d|20\d\d)\b").iloc[0]}:
            out[promo] = [event_id, *[e for e in out.get(promo, []) if e != event_id]]
    by_id = upcoming.set_index("event_id")
    return {promo: [{"name": str(by_id.event_name.get(e, "")),
                     "date": pd.Timestamp(by_id.start_at.get(e)).tz_convert(PARIS).date().isoformat(),
                     "url": f"https://www.eventbrite.fr/e/{e}"} for e in ids[:limit]]
            for promo, ids in out.items()}


WELCOME_TEXT = {
    "fr": {1: "Bienvenue dans le réseau ! Voici par où commencer : l'annuaire, les groupes et les prochains "
              "événements.",
           2: "Voilà un mois que vous nous avez rejoints : avez-vous trouvé votre groupe ? Voici ce que les "
              "membres apprécient le plus."},
    "en": {1: "Welcome to the network! Here is where to start: the directory, the groups and the next events.",
           2: "You joined us a month ago: have you found your group? Here is what members value most."},
}


def lifecycle_fields(campaign: Campaign, recipient: dict[str, Any], language: str) -> dict[str, Any]:
    """The lifecycle part of a message's personal data (empty for other kinds)."""
    lifecycle = campaign.lifecycle
    if lifecycle is None:
        return {}
    promo = recipient.get("graduation_year")
    promo = int(promo) if promo is not None and not pd.isna(promo) else None
    cycle = str(recipient.get("cycle") or "")
    year = int(cycle[:4]) if cycle[:4].isdigit() else None
    step = int(cycle.rsplit("-w", 1)[1]) if "-w" in cycle else 1
    texts = WELCOME_TEXT[language if language in WELCOME_TEXT else "fr"]
    raw_events = recipient.get("class_events")
    events = json.loads(raw_events) if isinstance(raw_events, str) and raw_events else []
    return {
        "promo": promo or "",
        "years": (year - promo) if promo and year else "",
        "group_link": lifecycle.group_link.format(promo=promo) if lifecycle.group_link and promo else "",
        "events": events,
        "welcome_text": texts.get(step, texts[max(texts)]),
    }


def events_html(events: list[dict[str, str]], language: str) -> str:
    if not events:
        return ("<p>Aucun événement de la promo n'est encore annoncé : proposez le vôtre !</p>" if language == "fr"
                else "<p>No class event is announced yet: suggest yours!</p>")
    return "<ul>" + "".join(f'<li><a href="{html.escape(e["url"])}">{html.escape(e["name"])}</a> '
                            f'({html.escape(e["date"])})</li>' for e in events) + "</ul>"
