"""The warehouse's stores of personal data: every base table of every schema, found by its columns.

Rows are found by `subject.row_condition` (member ids, email hashes, names, quoted records). Most are
deleted; the campaign ledger, outbox, audience and decisions, and SendGrid events of a campaign, are
anonymised instead (the member id becomes a pseudonym drawn for this erasure and never stored, personal
columns are emptied) so that campaign counts stay what they were.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import duckdb

from alumni_orchestration.privacy.subject import FREE_TEXT_COLUMNS, PRIVACY_SCHEMA, Subject, row_condition

# Schemas by store; any schema not named here (intermediate, marts, operations, ...) is "derived".
SCHEMA_STORES = {"raw": "warehouse.raw", "scoring": "warehouse.scoring", "campaigns": "warehouse.campaigns"}
DERIVED_STORE = "warehouse.derived"
WAREHOUSE_STORES = ("warehouse.raw", DERIVED_STORE, "warehouse.scoring", "warehouse.campaigns")
# Tables whose rows carry a campaign's counts: anonymised, not deleted (only their campaign rows, for events).
ANONYMISED_TABLES = {"campaigns.campaign_sends", "campaigns.outbox", "campaigns.campaign_audience",
                     "campaigns.campaign_decisions", "campaigns.campaign_batches"}
CAMPAIGN_EVENTS = ("raw.sendgrid_events", "campaign_id is not null")
# Columns emptied when a row is anonymised, besides ids, emails, names and free text.
PERSONAL_COLUMNS = ("url", "ip", "useragent", "reason", "name_key")


def store_of_schema(schema: str) -> str | None:
    if schema == PRIVACY_SCHEMA:
        return None  # the suppression list and the audit: ids, hashes and counts by design
    return SCHEMA_STORES.get(schema, DERIVED_STORE)


def base_tables(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return conn.execute("""select table_schema, table_name from information_schema.tables
                           where table_type = 'BASE TABLE' and table_catalog = current_database()
                           order by 1, 2""").fetchall()


def relations(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Tables and views: what a reader (an access request, a scan) sees."""
    return conn.execute("""select table_schema, table_name from information_schema.tables
                           where table_catalog = current_database() order by 1, 2""").fetchall()


def columns_of(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each column."""
    rows = conn.execute("""select column_name, data_type, is_nullable = 'YES' from information_schema.columns
                           where table_schema = ? and table_name = ? and table_catalog = current_database()
                           order by ordinal_position""", [schema, table]).fetchall()
    return [(r[0], r[1], bool(r[2])) for r in rows]


def used_params(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if f"${k}" in sql}


def tables_of_store(conn: duckdb.DuckDBPyConnection, store: str) -> list[str]:
    return [f"{s}.{t}" for s, t in base_tables(conn) if store_of_schema(s) == store]


def subject_rows(conn: duckdb.DuckDBPyConnection, qualified: str, subject: Subject) -> tuple[str | None, dict]:
    schema, table = qualified.split(".")
    return row_condition([c for c, _, _ in columns_of(conn, schema, table)], subject)


def _blank(column: str, data_type: str, nullable: bool) -> str:
    if nullable:
        return f'"{column}" = null'
    return f"\"{column}\" = 'erased'" if data_type.upper().startswith("VARCHAR") else f'"{column}" = "{column}"'


def _anonymise(conn: duckdb.DuckDBPyConnection, qualified: str, where: str, params: dict,
               pseudonyms: dict[int, int]) -> int:
    """Each member's rows take that member's pseudonym (rows matched by address alone, the first one)."""
    schema, table = qualified.split(".")
    fallback = next(iter(pseudonyms.values()))
    conn.execute("create or replace temp table privacy_pseudonyms (member_id varchar, pseudonym bigint)")
    conn.executemany("insert into privacy_pseudonyms values (?, ?)", [[str(m), p] for m, p in pseudonyms.items()])
    sets = []
    for column, data_type, nullable in columns_of(conn, schema, table):
        low = column.lower()
        if low == "member_id" or low.endswith("_member_id"):
            sets.append(f'"{column}" = cast(coalesce((select p.pseudonym from privacy_pseudonyms p '
                        f'where p.member_id = cast({qualified}."{column}" as varchar)), {fallback}) as {data_type})')
        elif ("email" in low and "status" not in low and "valid" not in low) or low.endswith(("first_name", "last_name")) \
                or low in FREE_TEXT_COLUMNS or low in PERSONAL_COLUMNS:
            sets.append(_blank(column, data_type, nullable))
    sql = f"update {qualified} set {', '.join(sets)} where {where}"
    return int(conn.execute(sql, used_params(sql, params)).fetchone()[0])


def erase_tables(conn: duckdb.DuckDBPyConnection, store: str, subject: Subject,
                 pseudonyms: dict[int, int]) -> Counter:
    """Delete (or anonymise) the subject's rows in every table of one store. Counts by table and action."""
    counts: Counter = Counter()
    for qualified in tables_of_store(conn, store):
        where, params = subject_rows(conn, qualified, subject)
        if where is None:
            continue
        if qualified in ANONYMISED_TABLES:
            counts[f"anonymised:{qualified}"] += _anonymise(conn, qualified, where, params, pseudonyms)
            continue
        if qualified == CAMPAIGN_EVENTS[0]:
            counts[f"anonymised:{qualified}"] += _anonymise(
                conn, qualified, f"{where} and {CAMPAIGN_EVENTS[1]}", params, pseudonyms)
        sql = f"delete from {qualified} where {where}"
        counts[f"erased:{qualified}"] += int(conn.execute(sql, used_params(sql, params)).fetchone()[0])
    return +counts


def count_rows(conn: duckdb.DuckDBPyConnection, qualified: str, subject: Subject) -> int:
    where, params = subject_rows(conn, qualified, subject)
    if where is None:
        return 0
    sql = f"select count(*) from {qualified} where {where}"
    return int(conn.execute(sql, used_params(sql, params)).fetchone()[0])


def select_rows(conn: duckdb.DuckDBPyConnection, qualified: str, subject: Subject) -> list[dict]:
    where, params = subject_rows(conn, qualified, subject)
    if where is None:
        return []
    sql = f"select * from {qualified} where {where}"
    frame = conn.execute(sql, used_params(sql, params)).df()
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def compact_warehouse(path: str | Path) -> None:
    """Copy the warehouse into a fresh file and swap it in: deleted rows leave no bytes behind in free
    blocks. The caller holds the only writer (the warehouse pool)."""
    path = Path(path)
    fresh = path.with_name(path.name + ".compacting")
    fresh.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as conn:
        conn.execute("checkpoint")
        name = conn.execute("select current_database()").fetchone()[0]
        conn.execute(f"attach '{fresh}' as privacy_compacted")
        conn.execute(f'copy from database "{name}" to privacy_compacted')
        conn.execute("detach privacy_compacted")
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
