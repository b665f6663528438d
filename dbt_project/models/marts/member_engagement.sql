-- Engagement per member as of the run date, by mode, on the CASE Alumni Engagement Metrics
-- backbone (communication, experiential, philanthropic, volunteer) plus governance. Each signal
-- decays with its own half-life (var half_life_days). engagement_index (0-100) is the percentile
-- rank of a weighted mean (var mode_weights) of the observable modes, each as ln(1 + value) over
-- its mean: see dbt_project.yml.
{%- set hl = var('half_life_days') %}
{%- set w = var('signal_weights') %}
{%- set mw = var('mode_weights') %}
with activity as (
    select
        member_id,
        signal,
        activity_date,
        activity_count,
        amount_eur,
        date_diff('day', activity_date, {{ as_of_date() }}) as age_days
    from {{ ref('member_activity_daily') }}
    where activity_date <= {{ as_of_date() }}
),

decayed as (
    select
        member_id,
        {%- for signal in ['opens', 'clicks', 'events_registered', 'events_attended', 'dues_paid', 'votes', 'group_joins', 'volunteer_starts'] %}
            sum(case when signal = '{{ signal }}' then activity_count * {{ decay('age_days', hl[signal]) }} else 0 end)
                as {{ signal }}_decayed,
        {%- endfor %}
        sum(case when signal = 'donations' then amount_eur / 50.0 * {{ decay('age_days', hl['donations']) }} else 0 end)
            as donations_decayed,
        max(activity_date) as last_activity_date,
        count(distinct case when age_days < 365 then activity_date end) as active_days_365
    from activity
    group by member_id
),

volunteering as (
    select
        member_id,
        count(*) filter (where started_on <= {{ as_of_date() }} and (ended_on is null or ended_on >= {{ as_of_date() }}))
            as active_volunteer_roles
    from {{ ref('stg_membership__volunteer_roles') }}
    group by member_id
),

leadership as (
    select
        member_id,
        count(*) filter (where is_leader and (left_on is null or left_on >= {{ as_of_date() }})) as led_groups
    from {{ ref('stg_membership__group_memberships') }}
    group by member_id
),

modes as (
    select
        p.member_id,
        p.segment,
        p.consent_newsletter and p.email_status = 'valid' as receives_email,
        coalesce(d.opens_decayed, 0) * {{ w['opens'] }} + coalesce(d.clicks_decayed, 0) * {{ w['clicks'] }}
            as communication,
        coalesce(d.events_registered_decayed, 0) * {{ w['events_registered'] }}
        + coalesce(d.events_attended_decayed, 0) * {{ w['events_attended'] }} as experiential,
        coalesce(d.dues_paid_decayed, 0) * {{ w['dues_paid'] }}
        + coalesce(d.donations_decayed, 0) * {{ w['donations_per_50_eur'] }} as philanthropic,
        coalesce(v.active_volunteer_roles, 0) * {{ w['active_volunteer_roles'] }}
        + coalesce(l.led_groups, 0) * {{ w['led_groups'] }}
        + coalesce(d.volunteer_starts_decayed, 0) * {{ w['volunteer_starts'] }}
        + coalesce(d.group_joins_decayed, 0) * {{ w['group_joins'] }} as volunteer,
        coalesce(d.votes_decayed, 0) * {{ w['votes'] }} as governance,
        coalesce(d.opens_decayed, 0) as opens_decayed,
        coalesce(d.clicks_decayed, 0) as clicks_decayed,
        d.last_activity_date,
        coalesce(d.active_days_365, 0) as frequency_365
    from {{ ref('member_profile') }} as p
    left join decayed as d on p.member_id = d.member_id
    left join volunteering as v on p.member_id = v.member_id
    left join leadership as l on p.member_id = l.member_id
),

scaled as (
    select
        *,
        ln(1 + communication) / nullif(avg(ln(1 + communication)) filter (where receives_email) over (), 0) as communication_scaled,
        ln(1 + experiential) / nullif(avg(ln(1 + experiential)) over (), 0) as experiential_scaled,
        ln(1 + philanthropic) / nullif(avg(ln(1 + philanthropic)) over (), 0) as philanthropic_scaled,
        ln(1 + volunteer) / nullif(avg(ln(1 + volunteer)) over (), 0) as volunteer_scaled,
        ln(1 + governance) / nullif(avg(ln(1 + governance)) over (), 0) as governance_scaled,
        ln(1 + frequency_365) / nullif(avg(ln(1 + frequency_365)) over (), 0) as frequency_scaled
    from modes
),

combined as (
    select
        *,
        (
            case when receives_email then {{ mw['communication'] }} * coalesce(communication_scaled, 0) else 0 end
            + {{ mw['experiential'] }} * coalesce(experiential_scaled, 0)
            + {{ mw['philanthropic'] }} * coalesce(philanthropic_scaled, 0)
            + {{ mw['volunteer'] }} * coalesce(volunteer_scaled, 0)
            + {{ mw['governance'] }} * coalesce(governance_scaled, 0)
            + {{ mw['frequency'] }} * coalesce(frequency_scaled, 0)
        ) / (
            case when receives_email then {{ mw['communication'] }} else 0 end
            + {{ mw['experiential'] }} + {{ mw['philanthropic'] }} + {{ mw['volunteer'] }} + {{ mw['governance'] }}
            + {{ mw['frequency'] }}
        ) as engagement_raw
    from scaled
)

select
    member_id,
    {{ as_of_date() }} as as_of,
    segment,
    communication,
    experiential,
    philanthropic,
    volunteer,
    governance,
    receives_email,
    opens_decayed,
    clicks_decayed,
    last_activity_date,
    date_diff('day', last_activity_date, {{ as_of_date() }}) as recency_days,
    frequency_365,
    cast((communication > 0.1) as integer) + cast((experiential > 0.1) as integer)
    + cast((philanthropic > 0.1) as integer) + cast((volunteer > 0.1) as integer)
    + cast((governance > 0.1) as integer) as active_modes,
    engagement_raw,
    100 * percent_rank() over (order by engagement_raw) as engagement_index
from combined
