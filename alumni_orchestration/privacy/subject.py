"""Who is being erased (or exported): a member's identifiers, and the SQL that finds their rows.

An erasure knows the member's emails and name while it runs; afterwards only the member id and the
SHA-256 of each normalised email are kept (`privacy.erased_members`), so that the nightly enforcement
and the membership load still recognise them. Rows are matched on either form through the same SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb

from alumni_orchestration.warehouse import table_exists

PRIVACY_SCHEMA = "privacy"
ERASED_MEMBERS = f"{PRIVACY_SCHEMA}.erased_members"
ERASURE_LOG = f"{PRIVACY_SCHEMA}.erasure_log"
ERASED_MEMBERS_DDL = """member_id integer not null, email_sha256 varchar, erased_at timestamp not null,
    erasure_id varchar not null"""
ERASURE_LOG_DDL = """erasure_id varchar primary key, requested_by varchar not null, requested_at timestamp not null,
    completed_at timestamp not null, request_reference varchar, members integer not null, stores varchar not null, rows_erased bigint not null,
    rows_anonymised bigint not null, files_rewritten bigint not null"""
# Columns of free text that may quote a record (quarantine payloads, custom args, ledger details).
FREE_TEXT_COLUMNS = ("payload", "custom_args", "detail", "html", "text", "subject")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_sha256(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()


def ensure_privacy_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(f"create schema if not exists {PRIVACY_SCHEMA}")
    conn.execute(f"create table if not exists {ERASED_MEMBERS} ({ERASED_MEMBERS_DDL})")
    conn.execute(f"create table if not exists {ERASURE_LOG} ({ERASURE_LOG_DDL})")


@dataclass(frozen=True)
class Subject:
    """The identifiers of the members to find. `emails` and names are known only during an erasure or an
    export; `email_hashes` are all that is kept."""

    member_ids: frozenset[int]
    email_hashes: frozenset[str]
    emails: frozenset[str] = frozenset()
    names: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (first, last), lower case

    def id_texts(self) -> list[str]:
        return sorted(str(m) for m in self.member_ids)

    def needles(self) -> list[str]:
        """What must not be found anywhere after an erasure: each email, each full name."""
        return sorted(self.emails) + sorted(f"{first} {last}" for first, last in self.names)

    def mentioned_in(self, text: str) -> bool:
        lowered = text.lower()
        return any(needle in lowered for needle in self.needles())


def erased_subject(conn: duckdb.DuckDBPyConnection) -> Subject:
    """Every member erased so far, as the nightly enforcement sees them: ids and email hashes only."""
    if not table_exists(conn, ERASED_MEMBERS):
        return Subject(frozenset(), frozenset())
    rows = conn.execute(f"select member_id, email_sha256 from {ERASED_MEMBERS}").fetchall()
    return Subject(frozenset(int(r[0]) for r in rows), frozenset(r[1] for r in rows if r[1]))


def _member_row(conn: duckdb.DuckDBPyConnection, member_id: int) -> tuple | None:
    if not table_exists(conn, "raw.members"):
        return None
    return conn.execute("select first_name, last_name, email, secondary_email from raw.members where member_id = ?",
                        [member_id]).fetchone()


def _provider_identities(conn: duckdb.DuckDBPyConnection, member_id: int) -> list[str]:
    """Emails under which the providers know the member, as identity resolution matched them."""
    resolved, collected = "intermediate.int_members_identity_resolved", "intermediate.int_identities_collected"
    if not (table_exists(conn, resolved) and table_exists(conn, collected)):
        return []
    rows = conn.execute(f"""select distinct c.email from {resolved} r join {collected} c using (source, record_key)
                            where r.member_id = ? and c.email is not null""", [member_id]).fetchall()
    return [r[0] for r in rows]


def find_subject(conn: duckdb.DuckDBPyConnection, member_id: int) -> Subject | None:
    """The member as the warehouse knows them, or None when raw.members does not hold them."""
    row = _member_row(conn, member_id)
    if row is None:
        return None
    first, last, email, secondary = row
    emails = {normalise_email(e) for e in (email, secondary, *_provider_identities(conn, member_id)) if e and e.strip()}
    names = {(first.strip().lower(), last.strip().lower())} if first and last else set()
    return Subject(frozenset({member_id}), frozenset(email_sha256(e) for e in emails), frozenset(emails),
                   frozenset(names))


def _email_match(column: str) -> str:
    return f"list_contains($hashes, sha256(lower(trim(cast({column} as varchar)))))"


def _text_match(column: str) -> str:
    """A free-text column quoting one of the emails (hashed after extraction) or a member id field."""
    emails = f"regexp_extract_all(lower(cast({column} as varchar)), '[^\\s\"'',;<>:]+@[^\\s\"'',;<>]+')"
    member = f"""regexp_extract(cast({column} as varchar), '"member_id"\\s*:\\s*"?(-?\\d+)"?', 1)"""
    return (f"(len(list_intersect(list_transform({emails}, lambda e: sha256(e)), $hashes)) > 0 "
            f"or list_contains($ids, {member}))")


def row_condition(columns: list[str], subject: Subject) -> tuple[str | None, dict]:
    """A SQL condition selecting the subject's rows of a table with these columns (None: it cannot hold
    them), and its parameters. Names match only rows without an email, so a namesake is never touched."""
    lowered = [c.lower() for c in columns]
    ids = [c for c, low in zip(columns, lowered, strict=True) if low == "member_id" or low.endswith("_member_id")]
    emails = [c for c, low in zip(columns, lowered, strict=True) if "email" in low and "status" not in low
              and "valid" not in low]
    texts = [c for c, low in zip(columns, lowered, strict=True) if low in FREE_TEXT_COLUMNS]
    parts = [f'list_contains($ids, cast("{c}" as varchar))' for c in ids]
    parts += [_email_match(f'"{c}"') for c in emails]
    parts += [_text_match(f'"{c}"') for c in texts]
    params: dict = {"ids": subject.id_texts(), "hashes": sorted(subject.email_hashes)}
    pairs = [(c, columns[lowered.index(c.lower().replace("first_name", "last_name"))])
             for c, low in zip(columns, lowered, strict=True)
             if low.endswith("first_name") and low.replace("first_name", "last_name") in lowered]
    if subject.names and pairs:
        no_email = " and ".join(f'"{c}" is null' for c in emails) or "true"
        names = [f"{f}|{last}" for f, last in sorted(subject.names)]
        parts += [f"(({no_email}) and list_contains($names, lower(trim(\"{f}\")) || '|' || lower(trim(\"{last}\"))))"
                  for f, last in pairs]
        params["names"] = names
    if not parts:
        return None, {}
    return "(" + " or ".join(parts) + ")", params


def erased_suppressions_sql(conn: duckdb.DuckDBPyConnection, members: str = "staging.stg_membership__members") -> str:
    """A `union select email ...` adding erased members' addresses to a suppression CTE ('' before any erasure)."""
    if not table_exists(conn, ERASED_MEMBERS):
        return ""
    return (f" union select email from {members} where member_id in (select member_id from {ERASED_MEMBERS}) "
            f"or sha256(lower(trim(email))) in (select email_sha256 from {ERASED_MEMBERS})")
