-- Every address SendGrid events were about, normalised, once. Distinct before normalising: the
-- events are millions, their addresses a few per member.
select distinct {{ normalise_email('email') }} as email
from (select distinct email from {{ source('sendgrid', 'sendgrid_events') }}) as events
