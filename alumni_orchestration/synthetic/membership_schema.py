"""The membership database schema (SQLAlchemy Core), documented in synthetic/README.md.

The generator creates it; the membership source reads the same tables from SQLite or PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Numeric, SmallInteger, String, Table

metadata = MetaData()

members = Table(
    "members", metadata,
    Column("member_id", Integer, primary_key=True, autoincrement=False),
    Column("civility", String(4)),
    Column("first_name", String(80)),
    Column("last_name", String(80)),
    Column("email", String(200)),
    Column("secondary_email", String(200)),
    Column("birth_date", Date),
    Column("graduation_year", SmallInteger),
    Column("programme", String(80)),
    Column("city", String(80)),
    Column("region", String(80)),
    Column("job_function", String(60)),
    Column("sector", String(60)),
    Column("declared_interests", String(300)),
    Column("consent_email", SmallInteger),
    Column("consent_newsletter", SmallInteger),
    Column("status", String(12)),
    Column("joined_on", Date),
    Column("left_on", Date),
    Column("updated_at", DateTime),
)

dues_payments = Table(
    "dues_payments", metadata,
    Column("payment_id", Integer, primary_key=True, autoincrement=False),
    Column("member_id", Integer),  # no FK: the real base has orphans, which ingestion quarantines
    Column("dues_year", SmallInteger),
    Column("tier", String(12)),
    Column("amount_eur", Numeric(8, 2)),
    Column("paid_on", Date),
    Column("method", String(12)),
)

groups = Table(
    "groups", metadata,
    Column("group_id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(120)),
    Column("kind", String(20)),
    Column("topic", String(40)),
)

group_memberships = Table(
    "group_memberships", metadata,
    Column("group_id", Integer, primary_key=True, autoincrement=False),
    Column("member_id", Integer, primary_key=True, autoincrement=False),
    Column("role", String(12)),
    Column("joined_on", Date),
    Column("left_on", Date),
)

general_assemblies = Table(
    "general_assemblies", metadata,
    Column("assembly_id", Integer, primary_key=True, autoincrement=False),
    Column("held_on", Date),
    Column("title", String(200)),
    Column("kind", String(20)),
    Column("voting_opens_on", Date),
    Column("voting_closes_on", Date),
)

assembly_votes = Table(
    "assembly_votes", metadata,
    Column("vote_id", Integer, primary_key=True, autoincrement=False),
    Column("assembly_id", Integer),
    Column("member_id", Integer),
    Column("voted_at", DateTime),
    Column("channel", String(12)),
)

volunteer_roles = Table(
    "volunteer_roles", metadata,
    Column("role_id", Integer, primary_key=True, autoincrement=False),
    Column("member_id", Integer),
    Column("role", String(30)),
    Column("started_on", Date),
    Column("ended_on", Date),
)

MEMBERSHIP_TABLES: tuple[Table, ...] = (
    members, dues_payments, groups, group_memberships, general_assemblies, assembly_votes, volunteer_roles,
)
