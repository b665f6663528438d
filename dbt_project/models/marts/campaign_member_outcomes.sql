-- One row per ledger member (campaign, cycle, member; both arms) with what SendGrid saw of the message and
-- every outcome a campaign can be measured on, as days after the wave (null: not observed). A campaign names
-- its outcome in campaigns.yaml (`dues_paid`, `reengaged`, `signed_up_or_paid`); campaign_results applies its
-- window to the days.
-- A view: it follows the ledger and the SendGrid events as they land; the dues and activity marts it joins are
-- as of their last build (campaign_window_job rebuilds them over a campaign's window).
{{ config(materialized='view') }}
with sends as (
    select * from {{ ref('stg_campaigns__sends') }}
),

events as (
    select
        campaign_id,
        cycle,
        try_cast(custom_member_id as integer) as member_id,
        bool_or(event = 'delivered') as delivered,
        bool_or(event = 'open' and not is_machine_open) as opened,
        bool_or(event = 'click') as clicked,
        bool_or(event in ('unsubscribe', 'group_unsubscribe')) as unsubscribed,
        bool_or(event = 'spamreport') as spam_reported
    from {{ ref('stg_sendgrid__events') }}
    where campaign_id is not null
    group by all
),

dues_paid as (
    -- the first payment of the cycle's dues year on or after the wave
    select
        s.campaign_id,
        s.cycle,
        s.member_id,
        min(d.first_paid_on - s.as_of) as days_to_dues_paid,
        sum(d.amount_eur) as dues_revenue_eur
    from sends as s
    inner join {{ ref('dues_history') }} as d
        on s.member_id = d.member_id and s.dues_year = d.dues_year and d.paid and s.as_of <= d.first_paid_on
    group by all
),

reengaged as (
    select
        s.campaign_id,
        s.cycle,
        s.member_id,
        min(a.activity_date - s.as_of) as days_to_reengaged
    from sends as s
    inner join {{ ref('member_activity_daily') }} as a
        on
            s.member_id = a.member_id and s.as_of <= a.activity_date
            and a.signal in ({{ "'" ~ var('reengagement_signals') | join("', '") ~ "'" }})
    group by all
),

signed_up_or_paid as (
    -- the lifecycle campaigns' outcome: an event sign-up, dues or a donation on or after the wave
    select
        s.campaign_id,
        s.cycle,
        s.member_id,
        min(a.activity_date - s.as_of) as days_to_signed_up_or_paid
    from sends as s
    inner join {{ ref('member_activity_daily') }} as a
        on
            s.member_id = a.member_id and s.as_of <= a.activity_date
            and a.signal in ('events_registered', 'dues_paid', 'donations')
    group by all
)

select
    s.campaign_id,
    s.cycle,
    s.member_id,
    s.period,
    s.as_of,
    s.step,
    s.arm,
    s.stratum,
    s.status,
    coalesce(e.delivered, false) as delivered,
    coalesce(e.opened, false) as opened,
    coalesce(e.clicked, false) as clicked,
    coalesce(e.unsubscribed, false) as unsubscribed,
    coalesce(e.spam_reported, false) as spam_reported,
    cast(p.days_to_dues_paid as integer) as days_to_dues_paid,
    cast(coalesce(p.dues_revenue_eur, 0) as decimal(12, 2)) as dues_revenue_eur,
    cast(r.days_to_reengaged as integer) as days_to_reengaged,
    cast(u.days_to_signed_up_or_paid as integer) as days_to_signed_up_or_paid
from sends as s
left join events as e on s.campaign_id = e.campaign_id and s.cycle = e.cycle and s.member_id = e.member_id
left join dues_paid as p on s.campaign_id = p.campaign_id and s.cycle = p.cycle and s.member_id = p.member_id
left join reengaged as r on s.campaign_id = r.campaign_id and s.cycle = r.cycle and s.member_id = r.member_id
left join signed_up_or_paid as u
    on s.campaign_id = u.campaign_id and s.cycle = u.cycle and s.member_id = u.member_id
