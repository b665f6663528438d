"""Erasure of one member (GDPR art. 17), and its nightly enforcement.

The files are rewritten first (they need the member's emails and name, read from the warehouse), then
every warehouse store in one transaction that also records the suppression (member id and email hashes)
and the audit row; last, the warehouse file is compacted so deleted rows leave no bytes behind. A run
that dies half-way is simply run again: each step finds what is left.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from alumni_orchestration.privacy.stores import STORE_NAMES, STORES, ErasureTarget
from alumni_orchestration.privacy.subject import (
    ERASED_MEMBERS,
    ERASURE_LOG,
    Subject,
    ensure_privacy_tables,
    erased_subject,
    find_subject,
)
from alumni_orchestration.privacy.warehouse_stores import WAREHOUSE_STORES, compact_warehouse, erase_tables
from alumni_orchestration.warehouse import connect


class UnknownMemberError(ValueError):
    """The warehouse holds no such member (and none was erased under that id)."""


@dataclass
class ErasureReport:
    erasure_id: str
    member_found: bool
    by_store: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, prefix: str) -> int:
        return sum(n for counts in self.by_store.values() for k, n in counts.items() if k.startswith(prefix))

    @property
    def rows_erased(self) -> int:
        return self.total("erased:")

    @property
    def rows_anonymised(self) -> int:
        return self.total("anonymised:")

    @property
    def files_rewritten(self) -> int:
        return self.total("files_rewritten")

    def text(self) -> str:
        lines = [f"erasure {self.erasure_id}: {self.rows_erased} rows erased, {self.rows_anonymised} anonymised, "
                 f"{self.files_rewritten} files rewritten"]
        lines += [f"  {store}: {json.dumps(counts, sort_keys=True)}" for store, counts in self.by_store.items()]
        return "\n".join(lines)


def new_pseudonym() -> int:
    """A negative id no member has, drawn at random and never stored: the link to the member is gone."""
    return -1 - secrets.randbelow(2**31 - 2)


def new_pseudonyms(member_ids: frozenset[int]) -> dict[int, int]:
    drawn: dict[int, int] = {}
    while len(drawn) < len(member_ids):
        drawn = dict(zip(sorted(member_ids), {new_pseudonym() for _ in member_ids}, strict=False))
    return drawn


def _record(conn: duckdb.DuckDBPyConnection, report: ErasureReport, subjects: list[Subject], requested_by: str,
            requested_at: dt.datetime, reference: str | None) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [[member_id, h, now, report.erasure_id] for subject in subjects for member_id in subject.member_ids
            for h in (sorted(subject.email_hashes) or [None])]
    conn.executemany(f"insert into {ERASED_MEMBERS} values (?, ?, ?, ?)", rows)
    conn.execute(f"insert into {ERASURE_LOG} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [report.erasure_id, requested_by, requested_at, now, reference, len(subjects),
                  json.dumps(report.by_store, sort_keys=True), report.rows_erased, report.rows_anonymised,
                  report.files_rewritten])


def erase_member(warehouse_path: str | Path, home: Path, landing: Path, member_id: int, requested_by: str,
                 reference: str | None = None, requested_at: dt.datetime | None = None,
                 skip: frozenset[str] = frozenset()) -> ErasureReport:
    """Remove or anonymise the member in every store (`skip` names stores left alone: tests only)."""
    return erase_members(warehouse_path, home, landing, [member_id], requested_by, reference, requested_at, skip)


def _subjects(conn: duckdb.DuckDBPyConnection, member_ids: list[int]) -> list[Subject]:
    """The members to erase as the warehouse knows them; already erased ones are skipped, unknown ones refused."""
    erased = erased_subject(conn).member_ids
    subjects = []
    for member_id in member_ids:
        subject = find_subject(conn, member_id)
        if subject is None and member_id not in erased:
            raise UnknownMemberError(f"member {member_id} is not in raw.members")
        if subject is not None:
            subjects.append(subject)
    return subjects


def erase_members(warehouse_path: str | Path, home: Path, landing: Path, member_ids: list[int], requested_by: str,
                  reference: str | None = None, requested_at: dt.datetime | None = None,
                  skip: frozenset[str] = frozenset()) -> ErasureReport:
    """One erasure of all these members (one pass over each store, one audit row, one compaction)."""
    unknown = set(skip) - set(STORE_NAMES)
    if unknown:
        raise ValueError(f"unknown stores: {sorted(unknown)}")
    requested_at = requested_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = ErasureReport(uuid.uuid4().hex, member_found=False)
    with connect(warehouse_path) as conn:
        ensure_privacy_tables(conn)
        subjects = _subjects(conn, member_ids)
        if not subjects:
            return report
        report.member_found = True
        subject = Subject(*(frozenset().union(*(getattr(s, f) for s in subjects))
                            for f in ("member_ids", "email_hashes", "emails", "names")))
        target = ErasureTarget(conn, home, landing, subject, new_pseudonyms(subject.member_ids))
        for store in STORES:  # files first: they need the emails and names the warehouse still holds
            if not store.in_warehouse and store.name not in skip:
                report.by_store[store.name] = dict(store.erase(target))
        conn.execute("begin transaction")
        try:
            for store in STORES:
                if store.in_warehouse and store.name not in skip:
                    report.by_store[store.name] = dict(store.erase(target))
            _record(conn, report, subjects, requested_by, requested_at, reference)
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
    compact_warehouse(warehouse_path)
    return report


def enforce_erasures(conn: duckdb.DuckDBPyConnection) -> Counter:
    """Remove again whatever a load brought back of members already erased (matched by id and email hash)."""
    ensure_privacy_tables(conn)
    subject = erased_subject(conn)
    counts: Counter = Counter()
    if not subject.member_ids:
        return counts
    for store in WAREHOUSE_STORES:
        counts += erase_tables(conn, store, subject, new_pseudonyms(subject.member_ids))
    return counts
