-- Dues payments from every channel: the membership database and HelloAsso membership forms.
with identity as (
    select
        record_key,
        member_id
    from {{ ref('int_members_identity_resolved') }}
    where source = 'helloasso_item' and member_id is not null
),

helloasso as (
    select
        i.member_id,
        it.dues_year,
        coalesce(it.dues_tier, 'annual') as tier,
        it.amount_eur,
        it.partition_date as paid_on,
        case when bool_or(p.payment_type = 'Offline') then 'offline' else 'helloasso' end as channel
    from {{ ref('stg_helloasso__items') }} as it
    inner join identity as i on i.record_key = cast(it.item_id as varchar)
    left join {{ ref('stg_helloasso__payments') }} as p on it.order_id = p.order_id
    where it.item_type = 'Membership' and it.state <> 'Canceled' and it.dues_year is not null
    group by all
)

select
    member_id,
    dues_year,
    tier,
    amount_eur,
    paid_on,
    channel
from {{ ref('stg_membership__dues_payments') }}
union all
select
    member_id,
    dues_year,
    tier,
    amount_eur,
    paid_on,
    channel
from helloasso
