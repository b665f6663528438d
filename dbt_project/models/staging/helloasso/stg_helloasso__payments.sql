select
    payment_id,
    order_id,
    paid_at,
    amount_cents / 100.0 as amount_eur,
    state,
    payment_type,
    payment_means
from {{ source('helloasso', 'helloasso_payments') }}
