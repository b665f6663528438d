"""The data quality of the membership source, night after night: counts and rates only, never a member.

Computed in DuckDB from what a snapshot load left in the warehouse (raw.members and raw.quarantine):

- completeness, over the current members (status active or lapsed: the members the association still
  writes to): a valid email, an email consent known (yes or no), an email consent given, a graduation
  year, a birth date (not in the future);
- duplicate emails: the members of the source sharing an email with another (the load keeps one of each
  and quarantines the others as `duplicate_member_email`);
- the quarantine of every membership table, by table, scope and reason, and its rate: rows not loaded
  over rows read.

Rates are percentages (0-100, two decimals) so a night-to-night change reads in points. The metric
keys are stable (`quality/...`), so Dagster plots each of them over the asset's materializations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from alumni_orchestration.ingest.membership import EMAIL_PATTERN, LOAD_ORDER
from alumni_orchestration.warehouse import QUARANTINE_TABLE, RAW_SCHEMA

CURRENT_STATUSES = ("active", "lapsed")
PREFIX = "quality/"
CHANGE_SUFFIX = "_change"

# Rates, as (metric, label) in the order the table shows them; each also has a night-to-night change.
RATE_LABELS = {
    "email_completeness": "Current members with a valid email (%)",
    "consent_email_known": "Current members whose email consent is known (%)",
    "consent_email_granted": "Current members who consent to emails (%)",
    "graduation_year_completeness": "Current members with a graduation year (%)",
    "birth_date_completeness": "Current members with a birth date (%)",
    "duplicate_email_rate": "Members sharing an email with another (%)",
    "quarantine_rate": "Source rows quarantined, all membership tables (%)",
}
COUNT_LABELS = {
    "current_members": "Current members",
    "members_read": "Member rows read",
    "members_sharing_email": "Members sharing an email",
    "rows_read": "Rows read, all membership tables",
    "rows_quarantined": "Rows quarantined (not loaded)",
    "fields_quarantined": "Fields quarantined (row loaded, value rejected)",
}


def _percent(part: int, whole: int) -> float:
    """0.0 when there is nothing to measure: an empty source has no quality to plot, and NaN breaks plots."""
    return round(100.0 * part / whole, 2) if whole else 0.0


@dataclass(frozen=True)
class MembershipQuality:
    current_members: int
    with_valid_email: int
    consent_email_known: int
    consent_email_granted: int
    with_graduation_year: int
    with_birth_date: int
    members_read: int
    members_sharing_email: int
    rows_read: int
    rows_quarantined: int
    fields_quarantined: int
    quarantine_by_reason: dict[str, int]  # "<table>:<reason>", field scope as "<table>:field:<reason>"

    def rates(self) -> dict[str, float]:
        current = self.current_members
        return {
            "email_completeness": _percent(self.with_valid_email, current),
            "consent_email_known": _percent(self.consent_email_known, current),
            "consent_email_granted": _percent(self.consent_email_granted, current),
            "graduation_year_completeness": _percent(self.with_graduation_year, current),
            "birth_date_completeness": _percent(self.with_birth_date, current),
            "duplicate_email_rate": _percent(self.members_sharing_email, self.members_read),
            "quarantine_rate": _percent(self.rows_quarantined, self.rows_read),
        }

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_LABELS}

    def metrics(self) -> dict[str, float | int]:
        """Plain numbers under stable keys; one key per quarantine reason, so each reason plots on its own."""
        values: dict[str, float | int] = {**self.rates(), **self.counts()}
        values |= {f"quarantine/{reason}": count for reason, count in self.quarantine_by_reason.items()}
        return {f"{PREFIX}{name}": value for name, value in values.items()}


_MEMBER_COUNTS = f"""
    select count(*),
           count(*) filter (where regexp_matches(lower(trim(email)), '{EMAIL_PATTERN}')),
           count(consent_email),
           count(*) filter (where consent_email),
           count(graduation_year),
           count(*) filter (where birth_date <= current_date)
    from {RAW_SCHEMA}.members
    where status in ({", ".join(f"'{s}'" for s in CURRENT_STATUSES)})"""

# Each quarantined duplicate shares its email with one kept member: the kept ones are the distinct emails.
_DUPLICATES = f"""
    select count(*), count(distinct lower(trim(json_extract_string(payload, '$.email'))))
    from {QUARANTINE_TABLE}
    where source = 'membership.members' and scope = 'row' and reason = 'duplicate_member_email'"""

_QUARANTINE = f"""
    select split_part(source, '.', 2) as tbl, scope, reason, count(*)
    from {QUARANTINE_TABLE}
    where source in ({", ".join(f"'membership.{t}'" for t in LOAD_ORDER)})
    group by all order by all"""


def profile_membership(conn: duckdb.DuckDBPyConnection) -> MembershipQuality:
    """The quality of the membership snapshot now in the warehouse (raw tables and their quarantine)."""
    current, email, known, granted, graduation, birth = conn.execute(_MEMBER_COUNTS).fetchone()
    duplicates, shared_emails = conn.execute(_DUPLICATES).fetchone()
    by_reason: dict[str, int] = {}
    row_quarantine = {table: 0 for table in LOAD_ORDER}
    fields = 0
    for table, scope, reason, count in conn.execute(_QUARANTINE).fetchall():
        if scope == "row":
            by_reason[f"{table}:{reason}"] = count
            row_quarantine[table] += count
        else:
            by_reason[f"{table}:field:{reason}"] = count
            fields += count
    loaded = {table: conn.execute(f"select count(*) from {RAW_SCHEMA}.{table}").fetchone()[0] for table in LOAD_ORDER}
    return MembershipQuality(
        current_members=current, with_valid_email=email, consent_email_known=known, consent_email_granted=granted,
        with_graduation_year=graduation, with_birth_date=birth,
        members_read=loaded["members"] + row_quarantine["members"],
        members_sharing_email=duplicates + shared_emails,
        rows_read=sum(loaded.values()) + sum(row_quarantine.values()),
        rows_quarantined=sum(row_quarantine.values()), fields_quarantined=fields,
        quarantine_by_reason=dict(sorted(by_reason.items())),
    )


def night_to_night(tonight: Mapping[str, float | int], previous: Mapping[str, float | int] | None) -> dict[str, float]:
    """The change of every rate since the previous night, in points (`quality/<rate>_change`); none on a first night."""
    if not previous:
        return {}
    changes = {}
    for name in RATE_LABELS:
        key = f"{PREFIX}{name}"
        if key in tonight and isinstance(previous.get(key), (int, float)):
            changes[f"{key}{CHANGE_SUFFIX}"] = round(float(tonight[key]) - float(previous[key]), 2)
    return changes


def with_vanished_reasons(tonight: Mapping[str, float | int],
                          previous: Mapping[str, float | int] | None) -> dict[str, float | int]:
    """Tonight's metrics, with 0 for a quarantine reason seen the previous night only: its plot falls to 0, not stops."""
    vanished = {key: 0 for key in (previous or {}) if key.startswith(f"{PREFIX}quarantine/") and key not in tonight}
    return {**tonight, **vanished}


def _cell(value: float | int | None) -> str:
    return "" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def quality_table(tonight: Mapping[str, float | int], previous: Mapping[str, float | int] | None) -> str:
    """A compact markdown table: each metric tonight, the previous night, and the change."""
    lines = ["| Metric | Tonight | Previous night | Change |", "|---|---:|---:|---:|"]
    for name, label in {**RATE_LABELS, **COUNT_LABELS}.items():
        key = f"{PREFIX}{name}"
        now, before = tonight.get(key), (previous or {}).get(key)
        change = (round(float(now) - float(before), 2) if isinstance(now, (int, float))
                  and isinstance(before, (int, float)) else None)
        lines.append(f"| {label} | {_cell(now)} | {_cell(before)} | {_cell(change)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class QualityThresholds:
    """When the quality view warns. Rates and changes are in percentage points."""

    min_email_completeness: float = 90.0
    max_email_completeness_drop: float = 5.0
    max_duplicate_email_rate: float = 1.0
    max_quarantine_rate: float = 5.0
    max_quarantine_rise: float = 2.0

    ENV = {
        "min_email_completeness": "ALUMNI_QUALITY_MIN_EMAIL_COMPLETENESS",
        "max_email_completeness_drop": "ALUMNI_QUALITY_MAX_EMAIL_DROP",
        "max_duplicate_email_rate": "ALUMNI_QUALITY_MAX_DUPLICATE_EMAILS",
        "max_quarantine_rate": "ALUMNI_QUALITY_MAX_QUARANTINE_RATE",
        "max_quarantine_rise": "ALUMNI_QUALITY_MAX_QUARANTINE_RISE",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> QualityThresholds:
        return cls(**{name: float(environ[var]) for name, var in cls.ENV.items() if environ.get(var)})


@dataclass(frozen=True)
class QualityVerdict:
    check: str
    passed: bool
    summary: str  # counts and rates only
    values: dict[str, float]


def check_descriptions(t: QualityThresholds) -> dict[str, str]:
    return {
        "email_completeness": (
            f"Warns when fewer than {t.min_email_completeness:g}% of current members have a valid email, or the share "
            f"drops by more than {t.max_email_completeness_drop:g} points since the previous night "
            f"(env {t.ENV['min_email_completeness']}, {t.ENV['max_email_completeness_drop']})."),
        "duplicate_emails": (
            f"Warns when more than {t.max_duplicate_email_rate:g}% of members share an email with another member "
            f"(env {t.ENV['max_duplicate_email_rate']})."),
        "quarantine_rate": (
            f"Warns when more than {t.max_quarantine_rate:g}% of the rows read from the membership database are "
            f"quarantined, or the share rises by more than {t.max_quarantine_rise:g} points since the previous night "
            f"(env {t.ENV['max_quarantine_rate']}, {t.ENV['max_quarantine_rise']})."),
    }


def _value(metrics: Mapping[str, float | int], name: str) -> float | None:
    value = metrics.get(f"{PREFIX}{name}")
    return float(value) if isinstance(value, (int, float)) else None


def assess(metrics: Mapping[str, float | int], t: QualityThresholds) -> list[QualityVerdict]:
    """The three checks on one night's metrics (with their `_change` keys when there was a previous night)."""
    if not metrics:  # no snapshot measured yet: nothing to judge, which is not a good score
        summary = "No quality metrics yet: materialize raw/members first"
        return [QualityVerdict(name, False, summary, {}) for name in ("email_completeness", "duplicate_emails",
                                                                       "quarantine_rate")]
    email = _value(metrics, "email_completeness") or 0.0
    email_change = _value(metrics, f"email_completeness{CHANGE_SUFFIX}")
    duplicates = _value(metrics, "duplicate_email_rate") or 0.0
    quarantine = _value(metrics, "quarantine_rate") or 0.0
    quarantine_change = _value(metrics, f"quarantine_rate{CHANGE_SUFFIX}")
    email_dropped = email_change is not None and email_change < -t.max_email_completeness_drop
    quarantine_rose = quarantine_change is not None and quarantine_change > t.max_quarantine_rise
    return [
        QualityVerdict(
            "email_completeness", email >= t.min_email_completeness and not email_dropped,
            f"{email:.2f}% of current members have a valid email"
            + (f" ({email_change:+.2f} points since the previous night)" if email_change is not None else ""),
            {"email_completeness": email, **({"change": email_change} if email_change is not None else {})}),
        QualityVerdict(
            "duplicate_emails", duplicates <= t.max_duplicate_email_rate,
            f"{duplicates:.2f}% of members share an email with another member",
            {"duplicate_email_rate": duplicates}),
        QualityVerdict(
            "quarantine_rate", quarantine <= t.max_quarantine_rate and not quarantine_rose,
            f"{quarantine:.2f}% of the rows read were quarantined"
            + (f" ({quarantine_change:+.2f} points since the previous night)" if quarantine_change is not None else ""),
            {"quarantine_rate": quarantine, **({"change": quarantine_change} if quarantine_change is not None else {})}),
    ]
