select
    group_id,
    member_id,
    role,
    joined_on,
    left_on,
    role = 'leader' as is_leader
from {{ source('membership', 'group_memberships') }}
