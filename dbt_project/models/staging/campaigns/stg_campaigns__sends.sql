-- The ledger's rows that reached a decision (failed and cancelled rows never reached a member), with the dues
-- year their cycle belongs to. A view, so that campaign outcomes always follow the ledger without a rebuild.
-- Before the first campaign the ledger does not exist and DuckDB binds a view when it is created: the pre-hook
-- creates the empty ledger with campaigns/ledger.py's DDL (tests/test_campaign_outcomes_mart.py holds them equal).
{{ config(pre_hook=[
    "create schema if not exists campaigns",
    "create table if not exists campaigns.campaign_sends (
        campaign_id varchar not null, cycle varchar not null, member_id integer not null,
        period varchar not null, as_of date not null, step integer not null, arm varchar not null,
        status varchar not null, batch_id varchar, send_at timestamptz, attempts integer not null default 0,
        detail varchar, marketing boolean not null default true, updated_at timestamptz not null,
        stratum varchar not null default 'targeted',
        primary key (campaign_id, cycle, member_id))",
    "alter table campaigns.campaign_sends add column if not exists stratum varchar default 'targeted'"
]) }}

select
    campaign_id,
    cycle,
    member_id,
    period,
    as_of,
    step,
    arm,
    coalesce(stratum, 'targeted') as stratum,
    status,
    try_cast(left(cycle, 4) as integer) as dues_year
from {{ source('campaigns', 'campaign_sends') }}
where status not in ('failed', 'cancelled')
