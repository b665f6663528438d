"""The canonical membership contract: what the membership source must look like to be loaded.

Tables, columns, their types, the values a coded column may take, and which columns a row cannot do
without (a row missing one is quarantined by the load). The SQLAlchemy tables below are derived from
this declaration: the membership load reads them, and the synthetic generator writes them. A real
association's database or export is mapped onto this contract; the contract never follows a source.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Numeric, SmallInteger, String, Table
from sqlalchemy.types import TypeEngine

# Column kinds, and the SQL type each is stored as.
ID, SMALL_INT, TEXT, DATE, TIMESTAMP, EUROS, FLAG = "id", "small_int", "text", "date", "timestamp", "euros", "flag"

MEMBER_STATUSES = ("active", "lapsed", "left", "deceased")
DUES_TIERS = ("annual", "reduced", "student", "lifetime")
PAYMENT_METHODS = ("helloasso", "transfer", "card", "cheque", "cash")
GROUP_KINDS = ("professional", "regional", "club")
GROUP_ROLES = ("member", "leader")
VOTE_CHANNELS = ("online", "in_person", "proxy")
FLAG_VALUES = ("0", "1")  # consents: 1 = given


@dataclass(frozen=True)
class ContractColumn:
    name: str
    kind: str
    required: bool = False  # a row without it cannot be used: the load quarantines it
    allowed: tuple[str, ...] | None = None  # the vocabulary of a coded column (after lower/trim)
    length: int | None = None  # maximum length of a text column
    key: bool = False  # part of the table's primary key

    def sql_type(self) -> TypeEngine:
        if self.kind == TEXT:
            return String(self.length)
        return {ID: Integer(), SMALL_INT: SmallInteger(), DATE: Date(), TIMESTAMP: DateTime(),
                EUROS: Numeric(8, 2), FLAG: SmallInteger()}[self.kind]


@dataclass(frozen=True)
class ContractTable:
    name: str
    columns: tuple[ContractColumn, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.required)

    def column(self, name: str) -> ContractColumn:
        return next(c for c in self.columns if c.name == name)


def _key(name: str) -> ContractColumn:
    return ContractColumn(name, ID, required=True, key=True)


def _text(name: str, length: int, required: bool = False, allowed: tuple[str, ...] | None = None) -> ContractColumn:
    return ContractColumn(name, TEXT, required=required, allowed=allowed, length=length)


CONTRACT: tuple[ContractTable, ...] = (
    ContractTable("members", (
        _key("member_id"),
        _text("civility", 4), _text("first_name", 80), _text("last_name", 80),
        _text("email", 200), _text("secondary_email", 200),
        ContractColumn("birth_date", DATE), ContractColumn("graduation_year", SMALL_INT),
        _text("programme", 80), _text("city", 80), _text("region", 80),
        _text("job_function", 60), _text("sector", 60), _text("declared_interests", 300),
        ContractColumn("consent_email", FLAG, allowed=FLAG_VALUES),
        ContractColumn("consent_newsletter", FLAG, allowed=FLAG_VALUES),
        _text("status", 12, required=True, allowed=MEMBER_STATUSES),
        ContractColumn("joined_on", DATE), ContractColumn("left_on", DATE),
        ContractColumn("updated_at", TIMESTAMP),
    )),
    ContractTable("dues_payments", (
        _key("payment_id"),
        ContractColumn("member_id", ID, required=True),  # no FK: orphans exist, and the load quarantines them
        ContractColumn("dues_year", SMALL_INT, required=True),
        _text("tier", 12, required=True, allowed=DUES_TIERS),
        ContractColumn("amount_eur", EUROS, required=True),
        ContractColumn("paid_on", DATE, required=True),
        _text("method", 12, allowed=PAYMENT_METHODS),
    )),
    ContractTable("groups", (
        _key("group_id"),
        _text("name", 120), _text("kind", 20, allowed=GROUP_KINDS), _text("topic", 40),
    )),
    ContractTable("group_memberships", (
        _key("group_id"), _key("member_id"),
        _text("role", 12, allowed=GROUP_ROLES),
        ContractColumn("joined_on", DATE, required=True), ContractColumn("left_on", DATE),
    )),
    ContractTable("general_assemblies", (
        _key("assembly_id"),
        ContractColumn("held_on", DATE, required=True), _text("title", 200), _text("kind", 20),
        ContractColumn("voting_opens_on", DATE), ContractColumn("voting_closes_on", DATE),
    )),
    ContractTable("assembly_votes", (
        _key("vote_id"),
        ContractColumn("assembly_id", ID, required=True), ContractColumn("member_id", ID, required=True),
        ContractColumn("voted_at", TIMESTAMP, required=True),
        _text("channel", 12, allowed=VOTE_CHANNELS),
    )),
    ContractTable("volunteer_roles", (
        _key("role_id"),
        ContractColumn("member_id", ID, required=True), _text("role", 30),
        ContractColumn("started_on", DATE, required=True), ContractColumn("ended_on", DATE),
    )),
)

CONTRACT_TABLES: dict[str, ContractTable] = {table.name: table for table in CONTRACT}

metadata = MetaData()


def _sql_table(table: ContractTable) -> Table:
    return Table(table.name, metadata, *(
        Column(c.name, c.sql_type(), primary_key=c.key, autoincrement=False if c.key else "auto")
        for c in table.columns))


MEMBERSHIP_TABLES: tuple[Table, ...] = tuple(_sql_table(table) for table in CONTRACT)
