select
    role_id,
    member_id,
    role,
    started_on,
    ended_on
from {{ source('membership', 'volunteer_roles') }}
