-- One row per member and dues year, from the member's first cycle to the current one: paid or not,
-- how much, which tier and through which channel. Years after a lifetime payment are covered.
with payments as (
    select
        member_id,
        dues_year,
        sum(amount_eur) as amount_eur,
        arg_min(tier, paid_on) as tier,
        arg_min(channel, paid_on) as channel,
        min(paid_on) as first_paid_on
    from {{ ref('int_dues_payments_unioned') }}
    group by member_id, dues_year
),

bounds as (
    select
        min(dues_year) as first_year,
        year({{ as_of_date() }}) as current_year
    from payments
),

members as (
    select
        member_id,
        joined_on,
        left_on
    from {{ ref('stg_membership__members') }}
),

member_years as (
    select
        m.member_id,
        cast(y.dues_year as integer) as dues_year
    from members as m
    cross join bounds as b
    cross join lateral (select unnest(range(b.first_year, b.current_year + 1)) as dues_year) as y
    where year(m.joined_on) <= y.dues_year and (m.left_on is null or year(m.left_on) >= y.dues_year)
),

lifetime as (
    select
        member_id,
        min(dues_year) as since_year
    from payments where tier = 'lifetime' group by member_id
)

select
    my.member_id,
    my.dues_year,
    p.member_id is not null as paid,
    coalesce(p.amount_eur, 0) as amount_eur,
    coalesce(p.tier, case when l.since_year < my.dues_year then 'lifetime' end) as tier,
    p.channel,
    p.first_paid_on,
    coalesce(l.since_year < my.dues_year, false) as lifetime_covered
from member_years as my
left join payments as p on my.member_id = p.member_id and my.dues_year = p.dues_year
left join lifetime as l on my.member_id = l.member_id
