{# Exponential decay: the weight of a signal `age_days` old with the given half-life. #}
{% macro decay(age_days, half_life_days) -%}
    exp(-ln(2) * greatest({{ age_days }}, 0) / {{ half_life_days }})
{%- endmacro %}

{# The day the marts are computed as of. #}
{% macro as_of_date() -%}
    {%- if var('as_of') -%} cast('{{ var("as_of") }}' as date) {%- else -%} current_date {%- endif -%}
{%- endmacro %}

{# Life-stage segment, the same thresholds as the generator's behavioural model. #}
{% macro life_stage(age_years, years_since_graduation) -%}
    case
        when {{ years_since_graduation }} < 0 then 'students'
        when {{ years_since_graduation }} <= 5 and {{ age_years }} < 32 then 'young_alumni'
        when {{ age_years }} < 45 then 'mid_career'
        when {{ age_years }} < 55 then 'late_career'
        when {{ age_years }} < 62 then 'pre_retired'
        else 'retired'
    end
{%- endmacro %}

{# lower-case, unaccented, punctuation folded to single spaces: how names are compared. #}
{% macro name_key(first_name, last_name) -%}
    nullif(trim(regexp_replace(lower(strip_accents(coalesce({{ first_name }}, '') || ' ' || coalesce({{ last_name }}, ''))), '[^a-z0-9]+', ' ', 'g')), '')
{%- endmacro %}

{% macro normalise_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{% macro topics() -%}
    {{ return(['entrepreneuriat', 'finance', 'numerique', 'energie-climat', 'sante', 'industrie', 'conseil',
               'arts-culture', 'international', 'recherche', 'carriere', 'sport']) }}
{%- endmacro %}

{% macro segments() -%}
    {{ return(['students', 'young_alumni', 'mid_career', 'late_career', 'pre_retired', 'retired']) }}
{%- endmacro %}

{# Before an incremental build of member_activity_daily: remove exactly the window being rebuilt. #}
{% macro delete_activity_window() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where true
        {% if var('min_date') %}and activity_date >= cast('{{ var("min_date") }}' as date){% endif %}
        {% if var('max_date') %}and activity_date <= cast('{{ var("max_date") }}' as date){% endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{# Per landing day of raw SendGrid events: how many, and a fingerprint of the columns the email
   interactions are built from. A day whose count or fingerprint changed has been reloaded. #}
{% macro sendgrid_day_fingerprints() -%}
    select
        partition_date,
        count(*) as day_events,
        sum(hash(sg_event_id, event, event_at, email, url, sg_machine_open)) as day_fingerprint
    from {{ source('sendgrid', 'sendgrid_events') }}
    group by partition_date
{%- endmacro %}

{# Before an incremental build of int_email_interactions_filtered: remove the days whose raw events
   are no longer those the stored rows were built from. #}
{% macro delete_changed_sendgrid_days() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as t
        where not exists (
            select 1
            from ({{ sendgrid_day_fingerprints() }}) as d
            where
                d.partition_date is not distinct from t.partition_date
                and d.day_events = t.day_events and d.day_fingerprint = t.day_fingerprint
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
