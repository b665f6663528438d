select
    sg_event_id,
    partition_date,
    event,
    event_at,
    cast(timezone('Europe/Paris', cast(event_at as timestamptz) at time zone 'UTC') as date) as event_date,
    {{ normalise_email('email') }} as email,
    sg_message_id,
    category,
    url,
    regexp_extract(url, '/articles/([a-z0-9-]+)/', 1) as url_topic,
    coalesce(sg_machine_open, false) as is_machine_open,
    bounce_type,
    asm_group_id,
    member_id as custom_member_id,
    campaign_id,
    cycle,
    arm
from {{ source('sendgrid', 'sendgrid_events') }}
