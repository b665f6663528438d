{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_activity_window() }}"
    )
}}
-- One row per member, day and signal. Dagster passes each run's partition window as
-- vars min_date / max_date: exactly those days are deleted and rebuilt; the rest stays untouched.
select
    member_id,
    activity_date,
    signal,
    cast(count(*) as integer) as activity_count,
    cast(sum(amount_eur) as decimal(12, 2)) as amount_eur
from {{ ref('int_member_activities_unioned') }}
where
    activity_date is not null
    {% if var('min_date') %}and activity_date >= cast('{{ var("min_date") }}' as date){% endif %}
    {% if var('max_date') %}and activity_date <= cast('{{ var("max_date") }}' as date){% endif %}
group by member_id, activity_date, signal
