select
    attendee_id,
    event_id,
    order_id,
    created_at,
    changed_at,
    status,
    checked_in,
    cancelled,
    refunded,
    first_name,
    last_name,
    {{ name_key('first_name', 'last_name') }} as name_key,
    {{ normalise_email('email') }} as email,
    try_cast(promo as integer) as promo,
    gross_cents / 100.0 as gross_eur
from {{ source('eventbrite', 'eventbrite_attendees') }}
