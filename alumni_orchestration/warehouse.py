"""The DuckDB warehouse: short-lived connections, one writer at a time, and the quarantine table.

DuckDB lets one process hold the file for writing and no one else in at the same time. Writers
run in the `duckdb_warehouse` pool (limit 1) and keep their connection open only while writing;
any connection that still meets the lock waits and retries, and only after a bounded wait fails
with a plain sentence instead of DuckDB's "Could not set lock on file".
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from alumni_orchestration import settings

WAREHOUSE_POOL = "duckdb_warehouse"
RAW_SCHEMA = "raw"
QUARANTINE_TABLE = f"{RAW_SCHEMA}.quarantine"

QUARANTINE_DDL = f"""
create table if not exists {QUARANTINE_TABLE} (
    source varchar not null,      -- e.g. membership.dues_payments, sendgrid.events
    record_key varchar,           -- the record's id in its source, when it has one
    reason varchar not null,      -- machine-readable: unknown_member, impossible_date, ...
    scope varchar not null,       -- 'row': the record was not loaded; 'field': loaded, one field rejected
    payload varchar,              -- the record as read, JSON, truncated
    loaded_at timestamp not null,
    asset_key varchar not null,   -- the asset (and partition) that wrote it, so re-runs replace exactly it
    partition_key varchar not null default ''
)
"""


DEFAULT_MEMORY_LIMIT = "2GB"


def duckdb_settings() -> dict[str, str]:
    """DuckDB's memory cap and spill folder for every warehouse connection (dbt's profile reads the same
    variables): a large stage spills to disk instead of growing. ALUMNI_DUCKDB_MEMORY_LIMIT (default 2GB) and
    ALUMNI_DUCKDB_TEMP_DIR (default $ALUMNI_HOME/duckdb_tmp)."""
    return {"memory_limit": os.environ.get("ALUMNI_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT),
            "temp_directory": os.environ.get("ALUMNI_DUCKDB_TEMP_DIR", str(settings.alumni_home() / "duckdb_tmp"))}


class WarehouseBusyError(RuntimeError):
    """Another process held the warehouse for longer than we were willing to wait."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set lock" in text)


@contextmanager
def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 300.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting (with jitter) while another process holds its lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(f"The warehouse {path} does not exist yet: materialise the sources first.")
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only, config=duckdb_settings())
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() > deadline:
                raise WarehouseBusyError(
                    f"The warehouse {path.name} stayed busy with another writer for {wait_seconds:.0f} s; "
                    "try again when the running job has finished."
                ) from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 2.0)
    try:
        yield conn
    finally:
        conn.close()


def ensure_raw_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {RAW_SCHEMA}")
    conn.execute(QUARANTINE_DDL)


def payload_json(record: Mapping[str, Any] | str, limit: int = 4000) -> str:
    text = record if isinstance(record, str) else json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
    return text[:limit]


def replace_quarantine(conn: duckdb.DuckDBPyConnection, asset_key: str, partition_key: str, rows: pd.DataFrame) -> None:
    """Replace the quarantine rows one asset (partition) wrote; rows has source, record_key, reason, scope, payload."""
    conn.execute(f"delete from {QUARANTINE_TABLE} where asset_key = ? and partition_key = ?", [asset_key, partition_key])
    if rows.empty:
        return
    conn.register("quarantine_rows", rows)
    conn.execute(
        f"""insert into {QUARANTINE_TABLE}
            select source, record_key, reason, scope, payload, current_timestamp::timestamp, ?, ?
            from quarantine_rows""",
        [asset_key, partition_key],
    )
    conn.unregister("quarantine_rows")


def quarantine_counts(conn: duckdb.DuckDBPyConnection, asset_key: str, partition_key: str = "",
                      scope: str | None = None) -> dict[str, int]:
    query = f"select source || ':' || reason, count(*) from {QUARANTINE_TABLE} where asset_key = ? and partition_key = ?"
    params: list[Any] = [asset_key, partition_key]
    if scope:
        query += " and scope = ?"
        params.append(scope)
    return dict(conn.execute(query + " group by 1 order by 1", params).fetchall())


def parquet_source(path: str | Path) -> str:
    """`read_parquet('<path>')`, quoted, for a file (or glob) staged next to the warehouse."""
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def table_exists(conn: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, name]
    ).fetchone()[0])


def ensure_table(conn: duckdb.DuckDBPyConnection, qualified: str, ddl: str) -> None:
    conn.execute(f"create table if not exists {qualified} ({ddl})")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)


def insert_rows(conn: duckdb.DuckDBPyConnection, qualified: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    conn.register("new_rows", _frame(rows))
    conn.execute(f"insert into {qualified} by name select * from new_rows")
    conn.unregister("new_rows")


def replace_all_rows(conn: duckdb.DuckDBPyConnection, qualified: str, ddl: str, rows: list[dict[str, Any]]) -> None:
    """A snapshot table: the new rows replace the old ones, in one transaction."""
    conn.execute(f"create or replace table {qualified} ({ddl})")
    insert_rows(conn, qualified, rows)


def replace_partition_rows(conn: duckdb.DuckDBPyConnection, qualified: str, ddl: str, rows: list[dict[str, Any]],
                           date_column: str, first_day: str, last_day: str) -> None:
    """Replace exactly the rows whose `date_column` lies in [first_day, last_day]."""
    ensure_table(conn, qualified, ddl)
    conn.execute(f"delete from {qualified} where {date_column} between ? and ?", [first_day, last_day])
    insert_rows(conn, qualified, rows)


def upsert_rows(conn: duckdb.DuckDBPyConnection, qualified: str, ddl: str, rows: list[dict[str, Any]], key: str) -> None:
    """Insert or replace by primary key: the latest version of each record wins."""
    ensure_table(conn, qualified, ddl)
    if not rows:
        return
    frame = _frame(rows).drop_duplicates(subset=[key], keep="last")
    conn.register("new_rows", frame)
    conn.execute(f"delete from {qualified} where {key} in (select {key} from new_rows)")
    conn.execute(f"insert into {qualified} by name select * from new_rows")
    conn.unregister("new_rows")


def replace_quarantine_days(conn: duckdb.DuckDBPyConnection, asset_key: str, first_day: str, last_day: str,
                            rows: pd.DataFrame) -> None:
    """For daily-partitioned assets: quarantine rows carry their day as partition_key."""
    conn.execute(f"delete from {QUARANTINE_TABLE} where asset_key = ? and partition_key between ? and ?",
                 [asset_key, first_day, last_day])
    if rows.empty:
        return
    conn.register("quarantine_rows", rows)
    conn.execute(
        f"""insert into {QUARANTINE_TABLE}
            select source, record_key, reason, scope, payload, current_timestamp::timestamp, ?, partition_key
            from quarantine_rows""",
        [asset_key],
    )
    conn.unregister("quarantine_rows")
