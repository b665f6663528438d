"""Looking for a member: in every warehouse table and every file. What an erasure must leave empty.

`erased_traces` is the nightly check's view (ids and email hashes of every erased member); `scan_warehouse`
and `scan_files` look for one member's plain emails, full name and id, as a test or an audit would.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from alumni_orchestration.privacy.file_stores import mentions, model_rows
from alumni_orchestration.privacy.subject import PRIVACY_SCHEMA, Subject, erased_subject
from alumni_orchestration.privacy.warehouse_stores import base_tables, columns_of, count_rows, relations


def erased_traces(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of erased members (by id or email hash) in any table outside the privacy schema."""
    subject = erased_subject(conn)
    if not subject.member_ids:
        return {}
    found = {f"{s}.{t}": count_rows(conn, f"{s}.{t}", subject) for s, t in base_tables(conn) if s != PRIVACY_SCHEMA}
    return {table: n for table, n in found.items() if n}


def scan_warehouse(conn: duckdb.DuckDBPyConnection, subject: Subject) -> dict[str, int]:
    """Rows of any table or view (the privacy schema's hashes aside) that hold the member's id in an id
    column, or quote one of their emails or their full name in any text column."""
    needles = subject.needles()
    found: dict[str, int] = {}
    for schema, table in relations(conn):
        if schema == PRIVACY_SCHEMA:
            continue
        columns = columns_of(conn, schema, table)
        parts = [f"cast(\"{c}\" as varchar) in (select unnest($ids))" for c, _, _ in columns
                 if c.lower() == "member_id" or c.lower().endswith("_member_id")]
        texts = [c for c, data_type, _ in columns if data_type.upper().startswith("VARCHAR") or "JSON" in data_type]
        parts += [f"contains(lower(\"{c}\"), $n{i})" for c in texts for i in range(len(needles))]
        firsts = [c for c in texts if c.lower().endswith("first_name")]
        for first in firsts:
            last = first[: -len("first_name")] + "last_name"
            if last in texts:
                parts += [f"(lower(trim(\"{first}\")) = $f{i} and lower(trim(\"{last}\")) = $l{i})"
                          for i in range(len(subject.names))]
        if not parts:
            continue
        params = {"ids": subject.id_texts(), **{f"n{i}": n for i, n in enumerate(needles)},
                  **{f"f{i}": f for i, (f, _) in enumerate(sorted(subject.names))},
                  **{f"l{i}": la for i, (_, la) in enumerate(sorted(subject.names))}}
        sql = f'select count(*) from "{schema}"."{table}" where ' + " or ".join(parts)
        count = conn.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchone()[0]
        if count:
            found[f"{schema}.{table}"] = int(count)
    return found


def scan_files(root: Path, subject: Subject) -> list[str]:
    """Files under `root` whose bytes (any file, binary ones too) quote one of the member's emails or full name."""
    needles = [n.encode("utf-8") for n in subject.needles()]
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        if any(n in data for n in needles) or (path.suffix in (".json", ".jsonl", ".csv", ".log")
                                               and mentions(data.decode("utf-8", "replace"), subject)):
            hits.append(str(path.relative_to(root)))
    return hits


def scan_models(model_dir: Path, subject: Subject) -> list[str]:
    """Saved models holding rows of the member (by member id)."""
    return sorted(model_rows(model_dir, subject))
