-- One row per member: who they are, their life-stage segment and their dues standing, as of the run date.
with members as (
    select * from {{ ref('stg_membership__members') }}
),

dues as (
    select
        member_id,
        bool_or(dues_year = year({{ as_of_date() }}) and (paid or lifetime_covered)) as paid_current_cycle,
        bool_or(dues_year = year({{ as_of_date() }}) - 1 and (paid or lifetime_covered)) as paid_previous_cycle,
        arg_max(tier, dues_year) filter (where tier is not null) as current_dues_tier
    from {{ ref('dues_history') }}
    group by member_id
)

select
    m.member_id,
    {{ life_stage(
        "date_diff('day', m.birth_date, " ~ as_of_date() ~ ") / 365.25",
        "year(" ~ as_of_date() ~ ") - m.graduation_year") }} as segment,
    m.graduation_year,
    m.programme,
    m.city,
    m.region,
    m.job_function,
    m.sector,
    m.declared_interests,
    coalesce(m.consent_email, false) as consent_email,
    coalesce(m.consent_newsletter, false) as consent_newsletter,
    m.email_status,
    m.status,
    m.joined_on,
    coalesce(d.current_dues_tier, 'none') as current_dues_tier,
    coalesce(d.paid_current_cycle, false) as paid_current_cycle,
    coalesce(d.paid_previous_cycle, false) as paid_previous_cycle
from members as m
left join dues as d on m.member_id = d.member_id
