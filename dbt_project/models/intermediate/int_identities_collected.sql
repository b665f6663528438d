-- Every identity a provider shows us, one row per record: who SendGrid mailed, who registered on
-- Eventbrite, who bought or paid on HelloAsso. Matched to members in int_members_identity_resolved.
with sendgrid as (
    select
        'sendgrid_recipient' as source,
        email as record_key,
        email,
        cast(null as varchar) as name_key,
        cast(null as integer) as promo,
        cast(null as bigint) as order_id
    from {{ ref('stg_sendgrid__recipients') }}
    where email is not null
),

eventbrite as (
    select
        'eventbrite_attendee' as source,
        attendee_id as record_key,
        email,
        name_key,
        promo,
        cast(null as bigint) as order_id
    from {{ ref('stg_eventbrite__attendees') }}
),

helloasso_items as (
    select
        'helloasso_item' as source,
        cast(item_id as varchar) as record_key,
        email,
        name_key,
        promo,
        order_id
    from {{ ref('stg_helloasso__items') }}
    where item_type in ('Registration', 'Membership', 'Donation')
),

helloasso_payers as (
    select
        'helloasso_payer' as source,
        cast(order_id as varchar) as record_key,
        payer_email as email,
        payer_name_key as name_key,
        cast(null as integer) as promo,
        order_id
    from {{ ref('stg_helloasso__orders') }}
)

select * from sendgrid
union all
select * from eventbrite
union all
select * from helloasso_items
union all
select * from helloasso_payers
