select
    form_slug,
    form_type,
    title,
    topic,
    start_at,
    end_at,
    city
from {{ source('helloasso', 'helloasso_forms') }}
