-- Provider identities matched to members: primary email, then secondary email, then
-- name + graduation year when that pair names exactly one member. Unmatched rows stay, with a
-- null member_id, and are listed for review in int_identities_unmatched.
with identities as (
    select * from {{ ref('int_identities_collected') }}
),

members as (
    select
        member_id,
        email,
        secondary_email,
        name_key,
        graduation_year
    from {{ ref('stg_membership__members') }}
),

unique_names as (
    select
        name_key,
        graduation_year,
        min(member_id) as member_id
    from members
    where name_key is not null
    group by name_key, graduation_year
    having count(*) = 1
),

matched as (
    select
        i.source,
        i.record_key,
        coalesce(by_email.member_id, by_secondary.member_id, by_name.member_id) as member_id,
        case
            when by_email.member_id is not null then 'primary_email'
            when by_secondary.member_id is not null then 'secondary_email'
            when by_name.member_id is not null then 'name_and_promo'
        end as match_method,
        i.email is not null as had_email,
        i.name_key is not null and i.promo is not null as had_name_and_promo,
        i.name_key,
        i.order_id
    from identities as i
    left join members as by_email on i.email = by_email.email
    left join members as by_secondary on i.email = by_secondary.secondary_email
    left join unique_names as by_name on i.name_key = by_name.name_key and i.promo = by_name.graduation_year
),

-- HelloAsso payers and donation lines carry no promo: when the same order holds a matched item
-- whose participant has the same name, it is the same person.
order_people as (
    select
        order_id,
        name_key,
        min(member_id) as member_id
    from matched
    where source = 'helloasso_item' and member_id is not null
    group by order_id, name_key
    having count(distinct member_id) = 1
)

select
    m.source,
    m.record_key,
    coalesce(m.member_id, o.member_id) as member_id,
    coalesce(m.match_method, case when o.member_id is not null then 'same_order_participant' end) as match_method,
    m.had_email,
    m.had_name_and_promo
from matched as m
left join order_people as o
    on
        m.member_id is null and m.source in ('helloasso_item', 'helloasso_payer')
        and m.order_id = o.order_id and m.name_key = o.name_key
