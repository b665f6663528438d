select
    {{ normalise_email('email') }} as email,
    kind,
    group_id,
    group_name,
    reason,
    created_at
from {{ source('sendgrid', 'sendgrid_suppressions') }}
