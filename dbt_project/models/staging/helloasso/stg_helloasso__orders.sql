select
    order_id,
    order_at,
    partition_date,
    form_slug,
    form_type,
    {{ normalise_email('payer_email') }} as payer_email,
    payer_first_name,
    payer_last_name,
    {{ name_key('payer_first_name', 'payer_last_name') }} as payer_name_key,
    total_cents / 100.0 as total_eur
from {{ source('helloasso', 'helloasso_orders') }}
