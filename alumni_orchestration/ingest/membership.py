"""Membership database snapshots: read in chunks through SQLAlchemy, typed and validated in DuckDB.

Every table is first copied as text into an `_incoming` table, then each row either becomes a
typed row of `raw.<table>` or a quarantine row with the first reason that disqualifies it, so
that rows read = rows loaded + rows quarantined holds by construction and is checked after.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import sqlalchemy as sa

from alumni_orchestration.contracts.membership import MEMBERSHIP_TABLES
from alumni_orchestration.warehouse import RAW_SCHEMA, replace_quarantine

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
VALID_MEMBERS = f"{RAW_SCHEMA}.members"


@dataclass(frozen=True)
class TableRules:
    """How one membership table is typed, and which rows are quarantined, in order of precedence."""

    name: str
    key: str  # the expression naming a record in quarantine
    typed: dict[str, str]  # output column -> DuckDB expression over the text columns
    row_rules: list[tuple[str, str]]  # (reason, condition over typed columns `t.` and text columns `i.`)
    field_rules: list[tuple[str, str]] = field(default_factory=list)  # loaded, but one field rejected


def _date(col: str) -> str:
    return f"try_cast(left({col}, 10) as date)"


RULES: dict[str, TableRules] = {
    "members": TableRules(
        name="members",
        key="i.member_id",
        typed={
            "member_id": "try_cast(member_id as integer)",
            "civility": "civility", "first_name": "first_name", "last_name": "last_name",
            "email": "email", "secondary_email": "secondary_email",
            "birth_date": _date("birth_date"),
            "graduation_year": "try_cast(graduation_year as integer)",
            "programme": "programme", "city": "city", "region": "region",
            "job_function": "job_function", "sector": "sector", "declared_interests": "declared_interests",
            "consent_email": "try_cast(consent_email as integer) = 1",
            "consent_newsletter": "try_cast(consent_newsletter as integer) = 1",
            "status": "lower(trim(status))",
            "joined_on": _date("joined_on"), "left_on": _date("left_on"),
            "updated_at": "try_cast(updated_at as timestamp)",
        },
        row_rules=[
            ("invalid_member_id", "t.member_id is null"),
            ("duplicate_member_id", "count(*) over (partition by t.member_id) > 1"),
            ("unknown_status", "t.status not in ('active', 'lapsed', 'left', 'deceased') or t.status is null"),
            ("duplicate_member_email",
             "t.email is not null and trim(t.email) <> '' and row_number() over "
             "(partition by lower(trim(t.email)) order by t.member_id) > 1"),
        ],
        field_rules=[
            ("missing_email", "t.email is null or trim(t.email) = ''"),
            ("invalid_email", f"trim(t.email) <> '' and not regexp_matches(lower(trim(t.email)), '{EMAIL_PATTERN}')"),
            ("impossible_date", "i.birth_date is not null and (t.birth_date is null or t.birth_date > current_date)"),
        ],
    ),
    "dues_payments": TableRules(
        name="dues_payments",
        key="i.payment_id",
        typed={
            "payment_id": "try_cast(payment_id as integer)",
            "member_id": "try_cast(member_id as integer)",
            "dues_year": "try_cast(dues_year as integer)",
            "tier": "lower(trim(tier))",
            "amount_eur": "try_cast(amount_eur as decimal(10, 2))",
            "paid_on": _date("paid_on"),
            "method": "lower(trim(method))",
        },
        row_rules=[
            ("invalid_payment_id", "t.payment_id is null or count(*) over (partition by t.payment_id) > 1"),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS}) or t.member_id is null"),
            ("impossible_date",
             "t.paid_on is null or t.paid_on > current_date + interval 1 day "
             f"or t.paid_on < (select birth_date from {VALID_MEMBERS} m where m.member_id = t.member_id) "
             "or t.dues_year not between year(t.paid_on) - 1 and year(t.paid_on) + 1"),
            ("invalid_amount", "t.amount_eur is null or t.amount_eur <= 0"),
            ("unknown_tier", "t.tier not in ('annual', 'reduced', 'student', 'lifetime') or t.tier is null"),
        ],
    ),
    "groups": TableRules(
        name="groups",
        key="i.group_id",
        typed={"group_id": "try_cast(group_id as integer)", "name": "name", "kind": "lower(trim(kind))",
               "topic": "nullif(trim(topic), '')"},
        row_rules=[("invalid_group_id", "t.group_id is null or count(*) over (partition by t.group_id) > 1")],
    ),
    "group_memberships": TableRules(
        name="group_memberships",
        key="i.group_id || ':' || i.member_id",
        typed={"group_id": "try_cast(group_id as integer)", "member_id": "try_cast(member_id as integer)",
               "role": "lower(trim(role))", "joined_on": _date("joined_on"), "left_on": _date("left_on")},
        row_rules=[
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS}) or t.member_id is null"),
            ("unknown_group", f"t.group_id not in (select group_id from {RAW_SCHEMA}.groups) or t.group_id is null"),
            ("impossible_date", "t.joined_on is null or t.joined_on > current_date or t.left_on < t.joined_on"),
        ],
    ),
    "general_assemblies": TableRules(
        name="general_assemblies",
        key="i.assembly_id",
        typed={"assembly_id": "try_cast(assembly_id as integer)", "held_on": _date("held_on"), "title": "title",
               "kind": "lower(trim(kind))", "voting_opens_on": _date("voting_opens_on"),
               "voting_closes_on": _date("voting_closes_on")},
        row_rules=[
            ("invalid_assembly_id", "t.assembly_id is null or count(*) over (partition by t.assembly_id) > 1"),
            ("impossible_date", "t.held_on is null or t.voting_opens_on > t.voting_closes_on"),
        ],
    ),
    "assembly_votes": TableRules(
        name="assembly_votes",
        key="i.vote_id",
        typed={"vote_id": "try_cast(vote_id as integer)", "assembly_id": "try_cast(assembly_id as integer)",
               "member_id": "try_cast(member_id as integer)", "voted_at": "try_cast(voted_at as timestamp)",
               "channel": "lower(trim(channel))"},
        row_rules=[
            ("invalid_vote_id", "t.vote_id is null or count(*) over (partition by t.vote_id) > 1"),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS}) or t.member_id is null"),
            ("unknown_assembly",
             f"t.assembly_id not in (select assembly_id from {RAW_SCHEMA}.general_assemblies) or t.assembly_id is null"),
            ("duplicate_vote", "row_number() over (partition by t.assembly_id, t.member_id order by t.vote_id) > 1"),
            ("impossible_date", "t.voted_at is null or t.voted_at > current_timestamp + interval 1 day"),
        ],
    ),
    "volunteer_roles": TableRules(
        name="volunteer_roles",
        key="i.role_id",
        typed={"role_id": "try_cast(role_id as integer)", "member_id": "try_cast(member_id as integer)",
               "role": "lower(trim(role))", "started_on": _date("started_on"), "ended_on": _date("ended_on")},
        row_rules=[
            ("invalid_role_id", "t.role_id is null or count(*) over (partition by t.role_id) > 1"),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS}) or t.member_id is null"),
            ("impossible_date", "t.started_on is null or t.started_on > current_date or t.ended_on < t.started_on"),
        ],
    ),
}

# Load order: members and groups first, so the others can be checked against what was loaded.
LOAD_ORDER = ("members", "groups", "general_assemblies", "dues_payments", "group_memberships",
              "assembly_votes", "volunteer_roles")


@dataclass
class TableLoad:
    table: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    fields_quarantined: int
    quarantined_by_reason: dict[str, int]


def read_source_chunks(engine: sa.Engine, table: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Stream a table as text columns (server-side cursor on PostgreSQL)."""
    columns = [c.name for c in next(t for t in MEMBERSHIP_TABLES if t.name == table).columns]
    query = sa.text(f'select {", ".join(columns)} from "{table}"')
    with engine.connect().execution_options(stream_results=True, yield_per=chunk_rows) as conn:
        result = conn.execute(query)
        while batch := result.fetchmany(chunk_rows):
            text = [[None if v is None else str(v) for v in row] for row in batch]
            yield pd.DataFrame(text, columns=columns, dtype=object)


def copy_incoming(conn: duckdb.DuckDBPyConnection, engine: sa.Engine, table: str, chunk_rows: int = 50_000) -> int:
    columns = [c.name for c in next(t for t in MEMBERSHIP_TABLES if t.name == table).columns]
    incoming = f"{RAW_SCHEMA}._incoming_{table}"
    conn.execute(f"create or replace table {incoming} ({', '.join(f'{c} varchar' for c in columns)})")
    rows = 0
    for frame in read_source_chunks(engine, table, chunk_rows):
        conn.register("incoming_chunk", frame)
        conn.execute(f"insert into {incoming} select * from incoming_chunk")
        conn.unregister("incoming_chunk")
        rows += len(frame)
    return rows


def validate_into_raw(conn: duckdb.DuckDBPyConnection, rules: TableRules, asset_key: str) -> TableLoad:
    """Split `_incoming_<table>` into raw.<table> and quarantine rows; returns the counts."""
    incoming = f"{RAW_SCHEMA}._incoming_{rules.name}"
    typed = ", ".join(f"{expr} as {col}" for col, expr in rules.typed.items())
    conn.execute(f"create or replace temp table typed_rows as select row_number() over () as _row, {typed} from {incoming}")
    conn.execute(f"create or replace temp table text_rows as select row_number() over () as _row, * from {incoming}")
    reasons = " ".join(f"when {cond} then '{reason}'" for reason, cond in rules.row_rules)
    conn.execute(f"""
        create or replace temp table judged as
        select t._row, case {reasons} else null end as _reason
        from typed_rows t join text_rows i using (_row)
    """)
    target = f"{RAW_SCHEMA}.{rules.name}"
    conn.execute(f"""create or replace table {target} as
        select {", ".join(f"t.{c}" for c in rules.typed)} from typed_rows t join judged j using (_row)
        where j._reason is null order by t._row""")
    quarantine = conn.execute(f"""
        select 'membership.{rules.name}' as source, cast({rules.key} as varchar) as record_key, j._reason as reason,
               'row' as scope, left(to_json(i)::varchar, 4000) as payload
        from judged j join text_rows i using (_row) where j._reason is not null
        order by i._row""").df()
    fields = []
    for reason, cond in rules.field_rules:
        fields.append(conn.execute(f"""
            select 'membership.{rules.name}' as source, cast({rules.key} as varchar) as record_key,
                   '{reason}' as reason, 'field' as scope, left(to_json(i)::varchar, 4000) as payload
            from typed_rows t join text_rows i using (_row) join judged j using (_row)
            where j._reason is null and ({cond}) order by i._row""").df())
    all_quarantine = pd.concat([quarantine, *fields], ignore_index=True) if fields else quarantine
    replace_quarantine(conn, asset_key, "", all_quarantine)
    rows_read = conn.execute(f"select count(*) from {incoming}").fetchone()[0]
    rows_loaded = conn.execute(f"select count(*) from {target}").fetchone()[0]
    by_reason = quarantine.groupby("reason").size().to_dict() if len(quarantine) else {}
    for frame in fields:
        for reason, n in (frame.groupby("reason").size().to_dict() if len(frame) else {}).items():
            by_reason[f"field:{reason}"] = int(n)
    conn.execute(f"drop table {incoming}")
    return TableLoad(rules.name, int(rows_read), int(rows_loaded), len(quarantine),
                     sum(len(f) for f in fields), {k: int(v) for k, v in sorted(by_reason.items())})


def load_membership_snapshot(conn: duckdb.DuckDBPyConnection, engine: sa.Engine, chunk_rows: int = 50_000) -> list[TableLoad]:
    """Copy, type and validate every membership table in one transaction: all of them or none."""
    loads = []
    conn.execute("begin transaction")
    try:
        for table in LOAD_ORDER:
            copy_incoming(conn, engine, table, chunk_rows)
            loads.append(validate_into_raw(conn, RULES[table], asset_key=f"raw/{table}"))
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return loads

