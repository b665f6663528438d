{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed_sendgrid_days() }}"
    )
}}
-- Human opens and clicks among SendGrid events, one row per event, with its day (Europe/Paris) and
-- link topic: the email part of int_member_activities_unioned, without re-reading every event of
-- the history each night. Incremental by landing day (partition_date): each stored row carries its
-- day's event count and content fingerprint in raw; the pre-hook deletes the days whose raw events
-- changed or disappeared and this query inserts the days not stored, so a nightly run reads the new
-- day and a backfill the days it reloaded, whichever run loaded them. --full-refresh rebuilds all.
with raw_days as (
    {{ sendgrid_day_fingerprints() }}
)

select
    e.partition_date,
    e.sg_event_id,
    e.email,
    e.event_date as activity_date,
    case e.event when 'open' then 'opens' else 'clicks' end as signal,
    e.url_topic as topic,
    d.day_events,
    d.day_fingerprint
from {{ ref('stg_sendgrid__events') }} as e
inner join raw_days as d on e.partition_date is not distinct from d.partition_date
where
    ((e.event = 'open' and not e.is_machine_open) or e.event = 'click')
    {% if is_incremental() %}
        and not exists (select 1 from {{ this }} as t where t.partition_date is not distinct from e.partition_date)
    {% endif %}
