select
    vote_id,
    assembly_id,
    member_id,
    voted_at,
    channel
from {{ source('membership', 'assembly_votes') }}
