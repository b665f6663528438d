select
    assembly_id,
    held_on,
    title,
    kind,
    voting_opens_on,
    voting_closes_on
from {{ source('membership', 'general_assemblies') }}
