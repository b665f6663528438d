{# The combination of `columns` is unique (dbt_utils.unique_combination_of_columns, written here: no dbt deps). #}
{% test unique_combination_of_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
