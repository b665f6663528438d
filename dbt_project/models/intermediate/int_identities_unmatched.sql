-- Identities no member could be matched to: guests, non-members, typos. Kept for review, never dropped.
select
    source,
    record_key,
    case
        when not had_email and not had_name_and_promo then 'nothing_to_match_on'
        when had_name_and_promo then 'no_member_with_this_email_or_name_and_promo'
        else 'no_member_with_this_email'
    end as reason
from {{ ref('int_members_identity_resolved') }}
where member_id is null
