-- One row per member and topic: affinity = declared-interest prior + decayed measured signals
-- (clicked links' topics, events' topics, groups' topics), normalised to sum to 1 per member.
-- Members with neither a declared interest nor a signal take their segment's average profile.
{%- set hl = var('half_life_days') %}
with topics as (
    select unnest({{ topics() }}) as topic
),

members as (
    select
        member_id,
        segment,
        declared_interests
    from {{ ref('member_profile') }}
),

declared as (
    select
        m.member_id,
        t.topic,
        {{ var('declared_interest_prior') }} / len(string_split(m.declared_interests, ';')) as prior
    from members as m
    cross join lateral (select unnest(string_split(m.declared_interests, ';')) as topic) as t
    where m.declared_interests is not null and m.declared_interests <> ''
),

measured as (
    select
        member_id,
        topic,
        sum(
            case signal
                when 'clicks' then 1.0
                when 'events_registered' then 2.0
                when 'events_attended' then 3.0
                when 'group_joins' then 2.0
                else 0.0
            end
            * {{ decay("date_diff('day', activity_date, " ~ as_of_date() ~ ")", hl['clicks']) }}
        ) as signal_weight
    from {{ ref('int_member_activities_unioned') }}
    where topic is not null and activity_date <= {{ as_of_date() }}
    group by member_id, topic
),

raw_affinity as (
    select
        m.member_id,
        m.segment,
        t.topic,
        coalesce(d.prior, 0) as prior,
        coalesce(s.signal_weight, 0) as measured
    from members as m
    cross join topics as t
    left join declared as d on m.member_id = d.member_id and t.topic = d.topic
    left join measured as s on m.member_id = s.member_id and t.topic = s.topic
),

per_member as (
    select
        *,
        sum(prior +measured) over (partition by member_id) as total,
        sum(measured) over (partition by member_id) as total_measured
    from raw_affinity
),

normalised as (
    select
        *,
        case when total > 0 then (prior +measured) / total end as own_affinity
    from per_member
),

segment_profile as (
    select
        segment,
        topic,
        avg(own_affinity) as segment_affinity
    from normalised
    where own_affinity is not null
    group by segment, topic
),

segment_normalised as (
    select
        segment,
        topic,
        segment_affinity / sum(segment_affinity) over (partition by segment) as segment_affinity
    from segment_profile
)

select
    n.member_id,
    n.topic,
    coalesce(n.own_affinity, s.segment_affinity, 1.0 / {{ topics() | length }}) as affinity,
    n.prior > 0 as declared,
    n.measured as measured_signal,
    case
        when n.total = 0 then 'segment_fallback'
        when n.total_measured = 0 then 'declared_only'
        when n.prior = 0 and n.total = n.total_measured then 'measured_only'
        else 'declared_and_measured'
    end as affinity_source
from normalised as n
left join segment_normalised as s on n.segment = s.segment and n.topic = s.topic
