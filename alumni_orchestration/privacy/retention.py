"""Retention (CNIL): a contact's data is kept at most N years (3) after the last contact that came from them.

Member-initiated contacts: a click, a payment (dues or a donation), attending an event, a vote, an update
of their profile. An open is not one: privacy proxies open every message. A contact without one for N
years is flagged; once flagged for the grace period it is anonymised (erased), unless a current member.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from alumni_orchestration.privacy.subject import PRIVACY_SCHEMA
from alumni_orchestration.warehouse import table_exists

RETENTION_FLAGS = f"{PRIVACY_SCHEMA}.retention_flags"
RETENTION_FLAGS_DDL = "member_id integer primary key, status varchar, last_contact_on date, flagged_on date not null"
# marts.member_activity_daily signals that a member initiated; `opens` is deliberately absent.
CONTACT_SIGNALS = ("clicks", "dues_paid", "donations", "events_attended", "votes")
CURRENT_STATUSES = ("active",)


@dataclass(frozen=True)
class RetentionRule:
    years: int = 3
    grace_days: int = 30
    signals: tuple[str, ...] = CONTACT_SIGNALS

    def cutoff(self, as_of: dt.date) -> dt.date:
        """The same calendar day N years before (28 February for a 29th)."""
        try:
            return as_of.replace(year=as_of.year - self.years)
        except ValueError:
            return as_of.replace(year=as_of.year - self.years, day=28)


def last_contacts(conn: duckdb.DuckDBPyConnection, rule: RetentionRule, as_of: dt.date) -> pd.DataFrame:
    """member_id, status, last_contact_on (NULL: none recorded) of every contact in raw.members."""
    activity = ("select member_id, max(activity_date) as last_on from marts.member_activity_daily "
                "where signal in (select unnest($signals)) and activity_date <= $as_of group by 1"
                if table_exists(conn, "marts.member_activity_daily")
                else "select null::integer as member_id, null::date as last_on where false")
    return conn.execute(f"""
        with activity as ({activity})
        select m.member_id, m.status,
               nullif(greatest(coalesce(a.last_on, date '0001-01-01'),
                               coalesce(least(cast(m.updated_at as date), $as_of), date '0001-01-01')),
                      date '0001-01-01') as last_contact_on
        from raw.members as m left join activity as a using (member_id)
        order by m.member_id""", {"signals": list(rule.signals), "as_of": as_of}).df()


def flag_contacts(contacts: pd.DataFrame, rule: RetentionRule, as_of: dt.date) -> pd.DataFrame:
    """The contacts whose last contact is older than the cutoff (or was never recorded)."""
    last = pd.to_datetime(contacts.last_contact_on)
    stale = last.isna() | (last < pd.Timestamp(rule.cutoff(as_of)))
    return contacts[stale.to_numpy()].reset_index(drop=True)


@dataclass(frozen=True)
class RetentionPlan:
    flags: pd.DataFrame  # member_id, status, last_contact_on, flagged_on: the table after this run
    newly_flagged: int
    no_longer_flagged: int
    to_anonymise: list[int]
    exempt_current: int


def plan_retention(flagged: pd.DataFrame, previous: pd.DataFrame, rule: RetentionRule, as_of: dt.date) -> RetentionPlan:
    """Keep each flag's first day; anonymise who has been flagged for the grace period and is not a member."""
    since = dict(zip(previous.member_id.astype(int), pd.to_datetime(previous.flagged_on).dt.date, strict=True))
    flags = flagged.assign(flagged_on=[since.get(int(m), as_of) for m in flagged.member_id])
    due = flags[[(as_of - f).days >= rule.grace_days for f in flags.flagged_on]]
    current = due.status.isin(CURRENT_STATUSES)
    return RetentionPlan(
        flags=flags[["member_id", "status", "last_contact_on", "flagged_on"]],
        newly_flagged=int(sum(int(m) not in since for m in flagged.member_id)),
        no_longer_flagged=len(set(since) - set(flagged.member_id.astype(int))),
        to_anonymise=sorted(int(m) for m in due.member_id[~current]),
        exempt_current=int(current.sum()),
    )


def previous_flags(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    if not table_exists(conn, RETENTION_FLAGS):
        return pd.DataFrame(columns=["member_id", "status", "last_contact_on", "flagged_on"])
    return conn.execute(f"select * from {RETENTION_FLAGS}").df()


def write_flags(conn: duckdb.DuckDBPyConnection, flags: pd.DataFrame, anonymised: list[int]) -> None:
    conn.execute(f"create schema if not exists {PRIVACY_SCHEMA}")
    conn.execute(f"create or replace table {RETENTION_FLAGS} ({RETENTION_FLAGS_DDL})")
    kept = flags[~flags.member_id.isin(anonymised)]
    if len(kept):
        conn.register("retention_rows", kept)
        conn.execute(f"insert into {RETENTION_FLAGS} by name select * from retention_rows")
        conn.unregister("retention_rows")
