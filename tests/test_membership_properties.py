"""Property: whatever text a membership table holds, loading it never raises, conserves rows, and
never turns a value into NULL without a quarantine row naming the column."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alumni_orchestration.ingest.membership import RULES, SOURCE_ROW, source_columns, validate_into_raw
from alumni_orchestration.warehouse import RAW_SCHEMA, ensure_raw_schema

# Values that parse somewhere, values that almost do, and any text at all.
NEAR_MISSES = ["1", "2", "7", "2024-01-10", "2024-01-10 09:00:00", "2024-01-10T09:00:00+02:00", "40.00", "40.005",
               "Oui", "non", "yes", "0", "active", "annual", " ", "", "2024-02-30", "1e3", "2000.5", "2000.0",
               "infinity", "epoch", "(0,1)", "'; drop table raw.members; --", "99999999999"]
cell = st.one_of(st.none(), st.sampled_from(NEAR_MISSES), st.text(max_size=12))
# A valid row to start from, so that rows get past the key and the row rules and a field can be lost.
VALID = {
    "members": {"member_id": st.sampled_from(["1", "2", "7"]), "status": st.just("active"),
                "birth_date": st.just("1990-01-01"), "graduation_year": st.just("2012"), "consent_email": st.just("1"),
                "joined_on": st.just("2015-09-01"), "updated_at": st.just("2024-01-01 09:00:00")},
    "group_memberships": {"group_id": st.just("1"), "member_id": st.sampled_from(["1", "2", "7"]),
                          "role": st.just("member"), "joined_on": st.just("2020-01-01"), "left_on": st.just("2021-01-01")},
}
# members: every kind of reading and the recency rule; group_memberships: a two-column key, a required date.
TABLES = ["members", "group_memberships"]


@pytest.fixture(scope="module")
def warehouse() -> duckdb.DuckDBPyConnection:
    """Members 1, 2 and 7, group 1 and assembly 1, for the tables checked against them."""
    conn = duckdb.connect()
    ensure_raw_schema(conn)
    conn.execute(f"create table {RAW_SCHEMA}.groups as select 1 as group_id")
    conn.execute(f"create table {RAW_SCHEMA}.general_assemblies as select 1 as assembly_id")
    conn.execute(f"create table {RAW_SCHEMA}.known_members as select unnest([1, 2, 7]) as member_id, "
                 "date '1990-01-01' as birth_date")
    return conn


def _incoming(conn: duckdb.DuckDBPyConnection, table: str, rows: list[list[str | None]]) -> pd.DataFrame:
    columns = source_columns(table)
    frame = pd.DataFrame([[str(n + 1), *row] for n, row in enumerate(rows)], columns=[SOURCE_ROW, *columns],
                         dtype=object)
    conn.execute(f"create or replace table {RAW_SCHEMA}._incoming_{table} "
                 f"({', '.join(f'{c} varchar' for c in [SOURCE_ROW, *columns])})")
    conn.register("frame", frame)
    conn.execute(f"insert into {RAW_SCHEMA}._incoming_{table} select * from frame")
    conn.unregister("frame")
    return frame


@pytest.mark.parametrize("table", TABLES)
@settings(max_examples=15)  # each load is ~10 queries: kept to a few seconds
@given(data=st.data())
def test_any_text_loads_or_is_quarantined_never_silently_nulled(warehouse: duckdb.DuckDBPyConnection, table: str,
                                                                 data: st.DataObject) -> None:
    conn, rules = warehouse, RULES[table]
    row = st.tuples(*(st.one_of(VALID[table].get(c, st.none()), cell) for c in source_columns(table)))
    rows = [list(r) for r in data.draw(st.lists(row, max_size=6))]
    if table != "members":
        conn.execute(f"create or replace table {RAW_SCHEMA}.members as select * from {RAW_SCHEMA}.known_members")
    source = _incoming(conn, table, rows)

    load = validate_into_raw(conn, rules, asset_key=f"raw/{table}")

    loaded = conn.execute(f"select * from {RAW_SCHEMA}.{table}").df()
    verdicts = conn.execute("select reason, scope, payload from raw.quarantine where asset_key = ?",
                            [f"raw/{table}"]).fetchall()
    row_verdicts = [json.loads(p)[SOURCE_ROW] for _, scope, p in verdicts if scope == "row"]
    assert load.rows_read == len(rows) == load.rows_loaded + load.rows_quarantined
    assert load.rows_loaded == len(loaded) and load.rows_quarantined == len(row_verdicts) == len(set(row_verdicts))
    assert not loaded.duplicated(list(rules.key)).any()
    fields = {(json.loads(p)[SOURCE_ROW], reason) for reason, scope, p in verdicts if scope == "field"}
    kept = source[~source[SOURCE_ROW].isin(row_verdicts)].reset_index(drop=True)
    for n, typed in loaded.iterrows():
        for column in rules.parsed_columns():
            text = kept.at[n, column]
            if text is not None and text.strip() and pd.isna(typed[column]):
                assert (kept.at[n, SOURCE_ROW], f"invalid_field_type:{column}") in fields, (column, text)
