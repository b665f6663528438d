-- The ledger's rows that reached a decision (failed and cancelled rows never reached a member), with the dues
-- year their cycle belongs to. Before any campaign has run the ledger does not exist: an empty, typed relation.
{%- set ledger_source = source('campaigns', 'campaign_sends') %}
{%- set ledger = load_relation(ledger_source) if execute else none %}
{%- if ledger is not none %}
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
from {{ ledger }}
where status not in ('failed', 'cancelled')
{%- else %}
select
    cast(null as varchar) as campaign_id,
    cast(null as varchar) as cycle,
    cast(null as integer) as member_id,
    cast(null as varchar) as period,
    cast(null as date) as as_of,
    cast(null as integer) as step,
    cast(null as varchar) as arm,
    cast(null as varchar) as stratum,
    cast(null as varchar) as status,
    cast(null as integer) as dues_year
where false
{%- endif %}
