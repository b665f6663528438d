with source as (
    select * from {{ source('membership', 'members') }}
)

select
    member_id,
    civility,
    first_name,
    last_name,
    {{ name_key('first_name', 'last_name') }} as name_key,
    {{ normalise_email('email') }} as email,
    case
        when {{ normalise_email('email') }} is null then 'missing'
        when regexp_matches({{ normalise_email('email') }}, '^[^@\s]+@[^@\s]+\.[^@\s]+$') then 'valid'
        else 'invalid'
    end as email_status,
    {{ normalise_email('secondary_email') }} as secondary_email,
    birth_date,
    graduation_year,
    programme,
    city,
    region,
    job_function,
    sector,
    declared_interests,
    consent_email,
    consent_newsletter,
    status,
    joined_on,
    left_on,
    updated_at
from source
