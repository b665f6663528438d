select
    payment_id,
    member_id,
    dues_year,
    tier,
    amount_eur,
    paid_on,
    method,
    case when method in ('cheque', 'cash') then 'offline' else 'membership_db' end as channel
from {{ source('membership', 'dues_payments') }}
