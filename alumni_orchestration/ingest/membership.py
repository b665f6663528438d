"""Membership database snapshots: read in chunks through SQLAlchemy, typed and validated in DuckDB.

Every table is first copied as text into an `_incoming` table, with each row's place in the source
(`_source_row`: SQLite's rowid, PostgreSQL's ctid). Then each row is judged in stages, each stage
seeing only the rows the earlier ones kept:

0. mapping (when the source is read through a mapping, mapping/): a key or required value that the
   mapping could not read quarantines the row as `mapping:<rule>:<column>`, with its file, row and value;
   any other such value is a field quarantine, loaded as NULL (stage 4);
1. parse: a key column or a required column that is missing or does not parse quarantines the row;
2. duplicate keys: one row per key is kept (the latest `recency` column, then the highest source
   row), the others are quarantined as `duplicate_<key>` naming the kept row;
3. the table's own rules, in order (the first that applies is the reason);
4. fields: any other typed column whose text does not parse is loaded as NULL, with a field
   quarantine `invalid_field_type:<column>`, as are the table's field rules.

So rows read = rows loaded + rows quarantined (row scope) holds by construction, and is checked after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import sqlalchemy as sa

from alumni_orchestration.contracts.membership import MEMBERSHIP_TABLES
from alumni_orchestration.privacy.subject import ERASED_MEMBERS, ensure_privacy_tables
from alumni_orchestration.warehouse import RAW_SCHEMA, replace_quarantine

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
VALID_MEMBERS = f"{RAW_SCHEMA}.members"
SOURCE_ROW = "_source_row"
# A stable identity of each source row, read with it; other databases number rows in read order.
SOURCE_ROW_EXPRESSION = {"sqlite": "rowid", "postgresql": "ctid"}

# The one reading of each kind of text, or NULL. DuckDB's own casts are too lenient for this:
# '2000.5' as integer is 2001, 'epoch' is a date, '12.345' as decimal(10, 2) is 12.35.
_INTEGER_TEXT = r"[+-]?\d{1,10}(\.0*)?"  # an integral value, also as a database writes a float ("2000.0")
_AMOUNT_TEXT = r"[+-]?\d{1,8}(\.\d{0,2}0*)?"  # euros, at most two significant decimals
_DATE_TEXT = r"\d{4}-\d{1,2}-\d{1,2}([ T][0-9:.]*([+-][0-9:]+|Z)?)?"
_TIMESTAMP_TEXT = r"\d{4}-\d{1,2}-\d{1,2}([ T][0-9:.]+)?"
_OFFSET_TEXT = r"(Z|[+-]\d{2}(:?\d{2})?)"
# Booleans as databases and exports write them: 1/0, true/false (Python's True), PostgreSQL's t/f,
# and the Oui/Non of French exports. Anything else ('yes', '2') is not a consent: NULL and quarantined.
TRUE_TEXTS = ("1", "true", "t", "oui")
FALSE_TEXTS = ("0", "false", "f", "non")


# A member erased at their request (privacy/erase.py) who is still in the source: quarantined, the record unquoted.
ERASED_MEMBER = "erased_member"
_ERASED_ID = f"t.member_id in (select member_id from {ERASED_MEMBERS})"
_ERASED_EMAIL = (f"sha256(lower(trim(t.email))) in (select email_sha256 from {ERASED_MEMBERS}) "
                 f"or sha256(lower(trim(t.secondary_email))) in (select email_sha256 from {ERASED_MEMBERS})")


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _integer(col: str) -> str:
    """An integral value; past the 32-bit range, NULL (quarantined) rather than an error."""
    return (f"case when regexp_full_match(trim({col}), '{_INTEGER_TEXT}') "
            f"then try_cast(cast(trim({col}) as double) as integer) end")


def _amount(col: str) -> str:
    return f"case when regexp_full_match(trim({col}), '{_AMOUNT_TEXT}') then cast(trim({col}) as decimal(10, 2)) end"


def _date(col: str) -> str:
    """A date, possibly written with a time (ignored), as a DATETIME column reads."""
    day = f"split_part(split_part(trim({col}), ' ', 1), 'T', 1)"
    return f"case when regexp_full_match(trim({col}), '{_DATE_TEXT}') then try_cast({day} as date) end"


def _timestamp(col: str) -> str:
    """A naive timestamp as stored; one written with an offset is converted to UTC, not truncated."""
    return (f"case when regexp_full_match(trim({col}), '{_TIMESTAMP_TEXT}') then try_cast(trim({col}) as timestamp) "
            f"when regexp_full_match(trim({col}), '{_TIMESTAMP_TEXT}{_OFFSET_TEXT}') "
            f"then try_cast(trim({col}) as timestamptz) at time zone 'UTC' end")


def _boolean(col: str) -> str:
    return (f"case when lower(trim({col})) in ({_sql_list(TRUE_TEXTS)}) then true "
            f"when lower(trim({col})) in ({_sql_list(FALSE_TEXTS)}) then false end")


def _code(col: str) -> str:
    return f"lower(trim({col}))"


def _source_order(col: str) -> str:
    """A sortable number from `_source_row`: a rowid as is, a ctid '(block,offset)' as block * 2^16 + offset."""
    return (f"case when starts_with({col}, '(') then cast(split_part(trim({col}, '()'), ',', 1) as bigint) * 65536 "
            f"+ cast(split_part(trim({col}, '()'), ',', 2) as bigint) else cast({col} as bigint) end")


@dataclass(frozen=True)
class TableRules:
    """How one membership table is typed, and which rows are quarantined, in order of precedence."""

    name: str
    key: tuple[str, ...]  # the columns identifying a row: invalid if missing, one row kept per value
    typed: dict[str, str]  # output column -> DuckDB expression over the text column of the same name
    row_rules: list[tuple[str, str]]  # (reason, condition over typed columns `t.` and text columns `i.`)
    field_rules: list[tuple[str, str]] = field(default_factory=list)  # loaded, but one field rejected
    required: tuple[str, ...] = ()  # a row missing one of these, or with one that does not parse, is quarantined
    key_name: str = ""  # names the duplicate reason, `duplicate_<key_name>`; the key column by default
    recency: str | None = None  # of duplicates, the row with the latest value is kept (then the last source row)

    @property
    def duplicate_reason(self) -> str:
        return f"duplicate_{self.key_name or '_'.join(self.key)}"

    @property
    def record_key(self) -> str:
        return " || ':' || ".join(f"i.{col}" for col in self.key)

    def parsed_columns(self) -> list[str]:
        """Columns whose typed value can be NULL for a non-empty text: the ones that can fail to parse."""
        return [col for col, expr in self.typed.items() if expr != col]


RULES: dict[str, TableRules] = {
    "members": TableRules(
        name="members",
        key=("member_id",),
        recency="updated_at",
        typed={
            "member_id": _integer("member_id"),
            "civility": "civility", "first_name": "first_name", "last_name": "last_name",
            "email": "email", "secondary_email": "secondary_email",
            "birth_date": _date("birth_date"),
            "graduation_year": _integer("graduation_year"),
            "programme": "programme", "city": "city", "region": "region",
            "job_function": "job_function", "sector": "sector", "declared_interests": "declared_interests",
            "consent_email": _boolean("consent_email"),
            "consent_newsletter": _boolean("consent_newsletter"),
            "status": _code("status"),
            "joined_on": _date("joined_on"), "left_on": _date("left_on"),
            "updated_at": _timestamp("updated_at"),
        },
        row_rules=[
            (ERASED_MEMBER, f"{_ERASED_ID} or {_ERASED_EMAIL}"),
            ("unknown_status", "t.status not in ('active', 'lapsed', 'left', 'deceased') or t.status is null"),
            ("duplicate_member_email",
             "t.email is not null and trim(t.email) <> '' and row_number() over "
             "(partition by lower(trim(t.email)) order by t.member_id) > 1"),
        ],
        field_rules=[
            ("missing_email", "t.email is null or trim(t.email) = ''"),
            ("invalid_email", f"trim(t.email) <> '' and not regexp_matches(lower(trim(t.email)), '{EMAIL_PATTERN}')"),
            ("impossible_date", "t.birth_date > current_date"),
        ],
    ),
    "dues_payments": TableRules(
        name="dues_payments",
        key=("payment_id",),
        required=("member_id", "dues_year", "amount_eur", "paid_on"),
        typed={
            "payment_id": _integer("payment_id"),
            "member_id": _integer("member_id"),
            "dues_year": _integer("dues_year"),
            "tier": _code("tier"),
            "amount_eur": _amount("amount_eur"),
            "paid_on": _date("paid_on"),
            "method": _code("method"),
        },
        row_rules=[
            (ERASED_MEMBER, _ERASED_ID),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS})"),
            ("impossible_date",
             "t.paid_on > current_date + interval 1 day "
             f"or t.paid_on < (select birth_date from {VALID_MEMBERS} m where m.member_id = t.member_id) "
             "or t.dues_year not between year(t.paid_on) - 1 and year(t.paid_on) + 1"),
            ("invalid_amount", "t.amount_eur <= 0"),
            ("unknown_tier", "t.tier not in ('annual', 'reduced', 'student', 'lifetime') or t.tier is null"),
        ],
    ),
    "groups": TableRules(
        name="groups",
        key=("group_id",),
        typed={"group_id": _integer("group_id"), "name": "name", "kind": _code("kind"),
               "topic": "nullif(trim(topic), '')"},
        row_rules=[],
    ),
    "group_memberships": TableRules(
        name="group_memberships",
        key=("group_id", "member_id"),
        key_name="group_membership",
        required=("joined_on",),
        typed={"group_id": _integer("group_id"), "member_id": _integer("member_id"),
               "role": _code("role"), "joined_on": _date("joined_on"), "left_on": _date("left_on")},
        row_rules=[
            (ERASED_MEMBER, _ERASED_ID),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS})"),
            ("unknown_group", f"t.group_id not in (select group_id from {RAW_SCHEMA}.groups)"),
            ("impossible_date", "t.joined_on > current_date or t.left_on < t.joined_on"),
        ],
    ),
    "general_assemblies": TableRules(
        name="general_assemblies",
        key=("assembly_id",),
        required=("held_on",),
        typed={"assembly_id": _integer("assembly_id"), "held_on": _date("held_on"), "title": "title",
               "kind": _code("kind"), "voting_opens_on": _date("voting_opens_on"),
               "voting_closes_on": _date("voting_closes_on")},
        row_rules=[("impossible_date", "t.voting_opens_on > t.voting_closes_on")],
    ),
    "assembly_votes": TableRules(
        name="assembly_votes",
        key=("vote_id",),
        required=("assembly_id", "member_id", "voted_at"),
        typed={"vote_id": _integer("vote_id"), "assembly_id": _integer("assembly_id"),
               "member_id": _integer("member_id"), "voted_at": _timestamp("voted_at"),
               "channel": _code("channel")},
        row_rules=[
            (ERASED_MEMBER, _ERASED_ID),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS})"),
            ("unknown_assembly", f"t.assembly_id not in (select assembly_id from {RAW_SCHEMA}.general_assemblies)"),
            ("duplicate_vote", "row_number() over (partition by t.assembly_id, t.member_id order by t.vote_id) > 1"),
            ("impossible_date", "t.voted_at > current_timestamp + interval 1 day"),
        ],
    ),
    "volunteer_roles": TableRules(
        name="volunteer_roles",
        key=("role_id",),
        required=("member_id", "started_on"),
        typed={"role_id": _integer("role_id"), "member_id": _integer("member_id"),
               "role": _code("role"), "started_on": _date("started_on"), "ended_on": _date("ended_on")},
        row_rules=[
            (ERASED_MEMBER, _ERASED_ID),
            ("unknown_member", f"t.member_id not in (select member_id from {VALID_MEMBERS})"),
            ("impossible_date", "t.started_on > current_date or t.ended_on < t.started_on"),
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


def source_columns(table: str) -> list[str]:
    return [c.name for c in next(t for t in MEMBERSHIP_TABLES if t.name == table).columns]


def read_source_chunks(engine: sa.Engine, table: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Stream a table as text columns (server-side cursor on PostgreSQL), each row with its `_source_row`."""
    columns = source_columns(table)
    row_identity = SOURCE_ROW_EXPRESSION.get(engine.dialect.name)
    selected = ([f"{row_identity} as {SOURCE_ROW}"] if row_identity else []) + columns
    query = sa.text(f'select {", ".join(selected)} from "{table}"')
    read = 0
    with engine.connect().execution_options(stream_results=True, yield_per=chunk_rows) as conn:
        result = conn.execute(query)
        while batch := result.fetchmany(chunk_rows):
            text = [[None if v is None else str(v) for v in row] for row in batch]
            if not row_identity:  # only as stable as the database's scan order
                text = [[str(read + n + 1), *row] for n, row in enumerate(text)]
            read += len(text)
            yield pd.DataFrame(text, columns=[SOURCE_ROW, *columns], dtype=object)


# A table's source: chunks of contract text columns (with `_source_row`), each with the errors of the
# values a mapping could not read (None when the source is already canonical). See mapping/read.py.
TableReader = Callable[[str, int], Iterator[tuple[pd.DataFrame, pd.DataFrame | None]]]
MAPPING_ERROR_COLUMNS = (SOURCE_ROW, "field", "rule", "value", "origin", "row", "fatal")


def canonical_reader(engine: sa.Engine) -> TableReader:
    def read(table: str, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, None]]:
        for frame in read_source_chunks(engine, table, chunk_rows):
            yield frame, None
    return read


def _create_mapping_errors(conn: duckdb.DuckDBPyConnection, incoming: str, create: str) -> None:
    conn.execute(f"{create} {incoming}_mapping ("
                 + ", ".join(f"{c} {'boolean' if c == 'fatal' else 'varchar'}" for c in MAPPING_ERROR_COLUMNS) + ")")


def copy_incoming(conn: duckdb.DuckDBPyConnection, engine: sa.Engine | None, table: str, chunk_rows: int = 50_000,
                  read: TableReader | None = None) -> int:
    """Copy a table as text into `_incoming_<table>`, and the mapping's errors into `_incoming_<table>_mapping`."""
    columns = [SOURCE_ROW, *source_columns(table)]
    incoming = f"{RAW_SCHEMA}._incoming_{table}"
    conn.execute(f"create or replace table {incoming} ({', '.join(f'{c} varchar' for c in columns)})")
    _create_mapping_errors(conn, incoming, "create or replace table")
    read = read or canonical_reader(engine)
    rows = 0
    for frame, errors in read(table, chunk_rows):
        conn.register("incoming_chunk", frame)
        conn.execute(f"insert into {incoming} select * from incoming_chunk")
        conn.unregister("incoming_chunk")
        if errors is not None and len(errors):
            conn.register("mapping_chunk", errors)
            conn.execute(f"insert into {incoming}_mapping select * from mapping_chunk")
            conn.unregister("mapping_chunk")
        rows += len(frame)
    return rows


def _unparsed(col: str) -> str:
    """Text was there, but it has no typed reading."""
    return f"(nullif(trim(i.{col}), '') is not null and t.{col} is null)"


def _parse_reasons(rules: TableRules) -> list[tuple[str, str]]:
    """Row reasons of stage 1: a key column missing or unparseable, a required column missing or unparseable."""
    keys = [(f"invalid_{col}", f"t.{col} is null") for col in rules.key]
    required = [(f"invalid_field_type:{col}", _unparsed(col)) for col in rules.required]
    missing = [(f"missing_field:{col}", f"t.{col} is null") for col in rules.required]
    return keys + required + missing


def _field_reasons(rules: TableRules) -> list[tuple[str, str]]:
    """Field reasons of stage 4: every other typed column that does not parse, then the table's field rules."""
    strict = set(rules.key) | set(rules.required)
    parsed = [(f"invalid_field_type:{col}", _unparsed(col)) for col in rules.parsed_columns() if col not in strict]
    return parsed + rules.field_rules


def _judge(conn: duckdb.DuckDBPyConnection, reason_sql: str, detail_sql: str = "null", scope: str = "row",
           window: str = "") -> None:
    """Add a verdict for each row still loaded (no row verdict yet) for which `reason_sql` is not NULL."""
    conn.execute(f"""
        insert into verdicts
        select _row, _reason, '{scope}', _detail from (
            select t._row, {reason_sql} as _reason, {detail_sql} as _detail
            from typed_rows t join text_rows i using (_row)
            anti join (select _row from verdicts where scope = 'row') v using (_row) {window})
        where _reason is not null""")


def _case(reasons: list[tuple[str, str]]) -> str:
    return "case " + " ".join(f"when {cond} then '{reason}'" for reason, cond in reasons) + " else null end"


_MAPPING_REASON = "'mapping:' || e.rule || ':' || e.field"
_MAPPING_DETAIL = "to_json({'file': e.origin, 'row': e.row, 'column': e.field, 'value': e.value, 'rule': e.rule})::varchar"


def _judge_mapping_rows(conn: duckdb.DuckDBPyConnection) -> None:
    """Stage 0: a key or required value that the mapping could not read rejects the row (its first such error)."""
    first = ("(select {} from mapping_errors e where e._source_row = i._source_row and e.fatal "
             "order by e.field, e.rule limit 1)")
    _judge(conn, first.format(_MAPPING_REASON), detail_sql=first.format(_MAPPING_DETAIL))


def _judge_mapping_fields(conn: duckdb.DuckDBPyConnection) -> None:
    """Any other value the mapping could not read is loaded as NULL, with a field quarantine naming the rule."""
    conn.execute(f"""
        insert into verdicts
        select i._row, {_MAPPING_REASON}, 'field', {_MAPPING_DETAIL}
        from mapping_errors e join text_rows i using ({SOURCE_ROW})
        anti join (select _row from verdicts where scope = 'row') v using (_row)
        where not e.fatal""")


def _judge_rows(conn: duckdb.DuckDBPyConnection, rules: TableRules) -> None:
    """Stages 0-3; each window (duplicates, the table's rules) sees only the rows the earlier stages kept."""
    _judge_mapping_rows(conn)
    if parse := _parse_reasons(rules):
        _judge(conn, _case(parse))
    order = (f"t.{rules.recency} desc nulls last, " if rules.recency else "") + "t._source_order desc"
    keep = f"partition by {', '.join(f't.{col}' for col in rules.key)} order by {order}"
    _judge(conn, f"case when row_number() over kept > 1 then '{rules.duplicate_reason}' end",
           detail_sql=f"first_value(i.{SOURCE_ROW}) over kept", window=f"window kept as ({keep})")
    for reason, cond in rules.row_rules:
        _judge(conn, f"case when {cond} then '{reason}' end")


def _judge_fields(conn: duckdb.DuckDBPyConnection, rules: TableRules) -> None:
    if reasons := _field_reasons(rules):
        unnested = "unnest([" + ", ".join(f"case when {cond} then '{reason}' end" for reason, cond in reasons) + "])"
        _judge(conn, unnested, scope="field")


def _erased_record(rules: TableRules) -> str:
    """A quarantined record of an erased member is never quoted, whatever its reason."""
    if "member_id" not in rules.typed:
        return "false"
    return f"coalesce({_ERASED_ID}{' or ' + _ERASED_EMAIL if 'email' in rules.typed else ''}, false)"


def validate_into_raw(conn: duckdb.DuckDBPyConnection, rules: TableRules, asset_key: str) -> TableLoad:
    """Split `_incoming_<table>` into raw.<table> and quarantine rows; returns the counts."""
    incoming = f"{RAW_SCHEMA}._incoming_{rules.name}"
    columns = [SOURCE_ROW, *source_columns(rules.name)]
    ensure_privacy_tables(conn)  # the erased members' list, empty until an erasure
    conn.execute(f"""create or replace temp table text_rows as
        select row_number() over (order by {_source_order(SOURCE_ROW)}) as _row, * from {incoming}""")
    typed = ", ".join(f"{expr} as {col}" for col, expr in rules.typed.items())
    conn.execute(f"""create or replace temp table typed_rows as
        select _row, {_source_order(SOURCE_ROW)} as _source_order, {typed} from text_rows""")
    conn.execute("create or replace temp table verdicts (_row bigint, _reason varchar, scope varchar, _detail varchar)")
    _create_mapping_errors(conn, incoming, "create table if not exists")  # an `_incoming_` table made by hand
    conn.execute(f"create or replace temp table mapping_errors as select * from {incoming}_mapping")
    _judge_rows(conn, rules)
    target = f"{RAW_SCHEMA}.{rules.name}"
    conn.execute(f"""create or replace table {target} as
        select {", ".join(f"t.{c}" for c in rules.typed)} from typed_rows t
        anti join verdicts v using (_row) order by t._row""")
    _judge_mapping_fields(conn)
    _judge_fields(conn, rules)
    record = ", ".join(f"'{c}': i.{c}" for c in columns)
    quarantine = conn.execute(f"""
        select 'membership.{rules.name}' as source, cast({rules.record_key} as varchar) as record_key,
               v._reason as reason, v.scope,
               left(case when {_erased_record(rules)} then null
                         when v._detail is null then to_json({{{record}}})
                         when starts_with(v._reason, 'mapping:')
                         then to_json({{'mapping_error': json(v._detail), {record}}})
                         else to_json({{'kept_source_row': v._detail, {record}}}) end::varchar, 4000) as payload
        from verdicts v join text_rows i using (_row) join typed_rows t using (_row)
        order by v.scope desc, i._row, v._reason""").df()
    replace_quarantine(conn, asset_key, "", quarantine)
    rows_read = conn.execute(f"select count(*) from {incoming}").fetchone()[0]
    rows_loaded = conn.execute(f"select count(*) from {target}").fetchone()[0]
    rows = quarantine[quarantine["scope"] == "row"]
    fields = quarantine[quarantine["scope"] == "field"]
    by_reason = {str(k): int(v) for k, v in rows.groupby("reason").size().items()}
    by_reason |= {f"field:{k}": int(v) for k, v in fields.groupby("reason").size().items()}
    conn.execute(f"drop table {incoming}")
    conn.execute(f"drop table {incoming}_mapping")
    return TableLoad(rules.name, int(rows_read), int(rows_loaded), len(rows), len(fields), dict(sorted(by_reason.items())))


def load_membership_snapshot(conn: duckdb.DuckDBPyConnection, engine: sa.Engine | None, chunk_rows: int = 50_000,
                             read: TableReader | None = None) -> list[TableLoad]:
    """Copy, type and validate every membership table in one transaction: all of them or none.

    `read` replaces the canonical tables of `engine` by another reader, a mapping's (mapping/read.py)."""
    loads = []
    conn.execute("begin transaction")
    try:
        for table in LOAD_ORDER:
            copy_incoming(conn, engine, table, chunk_rows, read)
            loads.append(validate_into_raw(conn, RULES[table], asset_key=f"raw/{table}"))
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    return loads

