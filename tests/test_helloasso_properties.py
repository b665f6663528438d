"""Property: whatever JSON value a field of a documented HelloAsso record holds, the flatteners return rows or
quarantine reasons and never raise; records read = rows loaded + records quarantined (row scope); the rows fit
the raw tables' types; an item or payer email is an email or NULL."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alumni_orchestration.ingest.helloasso.client import DDL, SCHEMAS
from alumni_orchestration.ingest.helloasso.records import (
    flatten_helloasso_forms,
    flatten_helloasso_order_details,
    flatten_helloasso_payments,
)
from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema, rows_to_arrow
from alumni_orchestration.ingest.typed import is_email
from tests.fixture_server import fixture
from tests.json_documents import field_paths, json_values

JSON = json_values(max_leaves=6)
ORDERS = fixture("helloasso", "orders_with_details.json")["data"]
PAYMENTS = fixture("helloasso", "payments.json")["data"]
FORMS = fixture("helloasso", "forms.json")["data"]


def _placed(records: list[dict], which: int, path: tuple, value: Any, delete: bool) -> list[Any]:
    """The documented records with one field of one of them replaced by `value` (or removed)."""
    records = copy.deepcopy(records)
    if not path:
        records[which] = value
        return records
    target: Any = records[which]
    for step in path[:-1]:
        target = target[step]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return records


def _mutations(records: list[dict]) -> st.SearchStrategy:
    """(which record, which field, the value, whether the field is removed instead) over documented records."""
    choices = [(i, p) for i, r in enumerate(records) for p in [(), *field_paths(r)]]
    return st.tuples(st.sampled_from(choices), JSON, st.booleans())


def _emails_are_emails(rows: list[dict], column: str) -> None:
    assert all(r[column] is None or is_email(r[column]) for r in rows)


@given(_mutations(ORDERS))
def test_any_value_in_any_field_of_an_order_item_option_or_custom_field(mutation) -> None:
    (which, path), value, delete = mutation
    records = _placed(ORDERS, which, path, value, delete)
    rows = flatten_helloasso_order_details(records)
    row_bad = [b for b in rows.bad if b["scope"] == "row"]
    assert len(records) == len(rows.orders) + len(row_bad)
    assert all(b["reason"] for b in rows.bad)
    kept = {o["order_id"] for o in rows.orders}
    assert {i["order_id"] for i in rows.items} <= kept and {o["order_id"] for o in rows.options} <= kept
    _emails_are_emails(rows.items, "email")
    _emails_are_emails(rows.orders, "payer_email")
    for name, table in (("helloasso_orders", rows.orders), ("helloasso_items", rows.items),
                        ("helloasso_item_options", rows.options)):
        assert rows_to_arrow(table, DDL[name], SCHEMAS[name]).num_rows == len(table)


@given(_mutations(PAYMENTS))
def test_any_value_in_any_field_of_a_payment(mutation) -> None:
    (which, path), value, delete = mutation
    records = _placed(PAYMENTS, which, path, value, delete)
    rows, bad = flatten_helloasso_payments(records)
    assert len(records) == len(rows) + len(bad) and all(b["reason"] for b in bad)
    assert rows_to_arrow(rows, DDL["helloasso_payments"], SCHEMAS["helloasso_payments"]).num_rows == len(rows)


@given(_mutations(FORMS))
def test_any_value_in_any_field_of_a_form(mutation) -> None:
    (which, path), value, delete = mutation
    records = _placed(FORMS, which, path, value, delete)
    rows, bad = flatten_helloasso_forms(records)
    assert len(records) == len(rows) + len(bad) and all(b["reason"] for b in bad)
    ddl = RAW_DDL["helloasso_forms"]
    assert rows_to_arrow(rows, ddl, arrow_schema(ddl)).num_rows == len(rows)


@given(st.lists(JSON, max_size=4))
def test_any_json_values_as_whole_records(values) -> None:
    rows = flatten_helloasso_order_details(values)
    assert len(values) == len(rows.orders) + len([b for b in rows.bad if b["scope"] == "row"])
    payments, bad = flatten_helloasso_payments(values)
    assert len(values) == len(payments) + len(bad)
    forms, bad = flatten_helloasso_forms(values)
    assert len(values) == len(forms) + len(bad)
