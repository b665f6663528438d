select
    group_id,
    name as group_name,
    kind as group_kind,
    topic
from {{ source('membership', 'groups') }}
