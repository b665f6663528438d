select
    item_id,
    order_id,
    order_at,
    partition_date,
    form_slug,
    form_type,
    item_type,
    state,
    amount_cents / 100.0 as amount_eur,
    user_first_name,
    user_last_name,
    {{ name_key('user_first_name', 'user_last_name') }} as name_key,
    {{ normalise_email('email') }} as email,
    try_cast(promo as integer) as promo,
    try_cast(regexp_extract(form_slug, 'adhesion-([0-9]{4})', 1) as integer) as dues_year,
    nullif(trim(regexp_extract(name, '—\s*([a-z]+)\s*$', 1)), '') as dues_tier
from {{ source('helloasso', 'helloasso_items') }}
