select
    event_id,
    name as event_name,
    topic,
    start_at,
    end_at,
    city,
    region,
    online_event,
    is_free,
    status
from {{ source('eventbrite', 'eventbrite_events') }}
