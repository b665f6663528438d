"""HelloAsso orders, items and payments staged a chunk of pages at a time to Parquet, then loaded: exactly
the rows, quarantine and counts of flattening the whole window in memory and loading it row by row."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from alumni_orchestration.ingest.helloasso.client import (
    DDL,
    StagedWindow,
    load_staged,
    outside_window_quarantine,
    stage_orders,
    stage_payments,
    window_summary,
    without_outside_fields,
)
from alumni_orchestration.ingest.helloasso.records import (
    flatten_helloasso_order_details,
    flatten_helloasso_payments,
)
from alumni_orchestration.warehouse import replace_partition_rows

FIRST, LAST = "2025-01-01", "2025-01-31"
TABLES = ("helloasso_orders", "helloasso_items", "helloasso_item_options", "helloasso_payments")


def _order(i: int, date: str | None, items: int = 1, **extra) -> dict:
    return {
        "id": i, "date": date, "formSlug": f"form-{i % 3}", "formType": "Event" if i % 2 else "Membership",
        "payer": {"email": f"p{i}@x.fr", "firstName": "Ana", "lastName": f"N{i}"},
        "amount": {"total": 1000 + i}, "meta": {"updatedAt": "2025-01-15T10:00:00.1234567+01:00"},
        "items": [{"id": i * 10 + k, "type": "Registration", "state": "Processed", "amount": 500, "name": "Ticket",
                   "user": {"firstName": "U", "lastName": f"L{k}"},
                   "customFields": [{"name": "Email", "answer": f"u{i}{k}@x.fr" if i % 11 else "Oui"},
                                    {"name": "Promo", "answer": "2010"}],
                   "options": [{"name": "Repas", "amount": 250, "optionId": 3}] if (i + k) % 4 == 0 else []}
                  for k in range(items)],
        **extra,
    }


def _records() -> tuple[list, list]:
    orders = [_order(i, f"2025-01-{1 + i % 28:02d}T12:00:00Z", items=i % 3) for i in range(1, 40)]
    orders += [
        {"date": "2025-01-03T10:00:00Z"},  # missing id
        "not a dict",
        _order(100, "not a date"),
        _order(101, None),
        _order(102, "2024-12-31T22:30:00Z"),  # 2024-12-31 23:30 in Paris: outside
        _order(103, "2024-12-31T23:30:00Z"),  # 2025-01-01 00:30 in Paris: inside
        _order(104, "2025-02-03T09:00:00Z", items=2),  # outside, after
        _order(105, "2025-01-31T23:10:00Z"),  # 2025-02-01 00:10 in Paris: outside
        _order(5, "2024-11-02T09:00:00Z", items=2),  # same id as an order inside the window
        {**_order(106, "2025-01-09T09:00:00Z"), "items": [{"type": "Donation"}, None, {"id": 1061, "amount": None}]},
        _order(107, "2025-01-10T09:00:00.123456789Z", meta=None, payer=None, amount=None),
        _order(108, "2025-01-11T09:00:00+05:00", formSlug=4242),  # a number where text is expected
    ]
    payments = [{"id": 9000 + i, "date": f"2025-01-{1 + i % 28:02d}T08:00:00Z", "amount": 700 + i, "state": "Authorized",
                 "type": "Offline" if i % 5 == 0 else "Card", "paymentMeans": "Card", "order": {"id": i}}
                for i in range(1, 30)]
    payments += [
        {"date": "2025-01-02T00:00:00Z"}, 7, {"id": 9100, "date": "bad"},
        {"id": 9101, "date": "2025-03-01T00:00:00Z", "amount": 5, "order": None},  # outside: quarantined
        {"id": 9001, "date": "2024-12-31T22:59:00Z", "amount": 5, "order": None},  # 23:59 in Paris, an inside id: outside
        {"id": 9102, "date": "2025-01-05T00:00:00Z", "amount": None, "order": {"id": None}, "state": 3},
    ]
    return orders, payments


def _old_load(conn: duckdb.DuckDBPyConnection, raw_orders: list, raw_payments: list) -> dict:
    """The in-memory reference for staging: everything in memory, loaded row by row. A record dated outside the
    window is quarantined, an order with its items."""
    rows = flatten_helloasso_order_details(raw_orders)
    orders, items, options = rows.orders, rows.items, rows.options
    bad_orders = [b for b in rows.bad if b["scope"] == "row" or FIRST <= b["row_date"].isoformat() <= LAST]
    payments, bad_payments = flatten_helloasso_payments(raw_payments)
    in_window = [o for o in orders if FIRST <= o["partition_date"].isoformat() <= LAST]
    bad_orders += [{"source": "helloasso.orders", "record_key": str(o["order_id"]), "reason": "outside_requested_window",
                    "scope": "row", "payload": "{}"}
                   for o in sorted(orders, key=lambda o: o["order_id"]) if o not in in_window]
    items = [i for i in items if FIRST <= i["partition_date"].isoformat() <= LAST]
    options = [o for o in options if FIRST <= o["partition_date"].isoformat() <= LAST]
    paid_in_window = [p for p in payments if FIRST <= p["partition_date"].isoformat() <= LAST]
    bad_payments += [{"source": "helloasso.payments", "record_key": str(p["payment_id"]),
                      "reason": "outside_requested_window", "scope": "row", "payload": "{}"}
                     for p in sorted(payments, key=lambda p: p["payment_id"]) if p not in paid_in_window]
    for name, table_rows in zip(TABLES, (in_window, items, options, paid_in_window), strict=True):
        replace_partition_rows(conn, f"raw.{name}", DDL[name], table_rows, "partition_date", FIRST, LAST)
    return {"orders_read": len(raw_orders), "payments_read": len(raw_payments), "bad_orders": bad_orders,
            "bad_payments": bad_payments, "items_read": len(items), "options_read": len(options),
            "last_order": max((o["order_at"] for o in in_window), default=None)}


def _new_load(conn: duckdb.DuckDBPyConnection, raw_orders: list, raw_payments: list, tmp: Path, chunk: int) -> dict:
    staged = StagedWindow(tmp / "o.parquet", tmp / "i.parquet", tmp / "io.parquet", tmp / "p.parquet", FIRST, LAST)
    orders_read, bad_orders = stage_orders(iter(raw_orders), staged.orders, staged.items, staged.options,
                                           chunk_size=chunk)
    payments_read, bad_payments = stage_payments(iter(raw_payments), staged.payments, chunk_size=chunk)
    summary = window_summary(staged)
    bad_orders = without_outside_fields(bad_orders, FIRST, LAST) + outside_window_quarantine(summary.outside)
    bad_payments += outside_window_quarantine(summary.payments_outside, "helloasso.payments")
    load_staged(conn, "raw", staged)
    return {"orders_read": orders_read, "payments_read": payments_read, "bad_orders": bad_orders,
            "bad_payments": bad_payments, "items_read": summary.items_kept, "options_read": summary.options_kept,
            "last_order": summary.last_order_at}


def _tables(conn: duckdb.DuckDBPyConnection) -> dict:
    """Each table's columns and rows (a table has no row order: sorted)."""
    return {t: (conn.execute(f"describe raw.{t}").fetchall(),
                conn.execute(f"select * from raw.{t} order by all").fetchall()) for t in TABLES}


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute("create schema raw")
    # Rows of other days stay; rows of the window are replaced.
    for name in TABLES:
        conn.execute(f"create table raw.{name} ({DDL[name]})")
    conn.execute("insert into raw.helloasso_orders (order_id, partition_date) values (1, '2024-06-01'), (2, '2025-01-05')")
    conn.execute("insert into raw.helloasso_payments (payment_id, partition_date) values (1, '2025-01-05')")
    return conn


@pytest.mark.parametrize("chunk", [1, 7, 5_000])
def test_staged_load_gives_the_rows_quarantine_and_counts_of_the_in_memory_load(tmp_path: Path, chunk: int) -> None:
    raw_orders, raw_payments = _records()
    with _warehouse(tmp_path / "old.duckdb") as old, _warehouse(tmp_path / "new.duckdb") as new:
        expected = _old_load(old, raw_orders, raw_payments)
        got = _new_load(new, raw_orders, raw_payments, tmp_path, chunk)
        assert got == expected
        assert _tables(new) == _tables(old)
    reasons = {(b["source"], b["reason"], b["scope"]) for b in got["bad_orders"]}
    # Order 106's items have no id: the order is quarantined with them; order 107 has no amount.total.
    assert reasons == {("helloasso.orders", "missing_id", "row"), ("helloasso.orders", "invalid_date", "row"),
                       ("helloasso.orders", "invalid_field_type:items.id", "row"),
                       ("helloasso.orders", "invalid_field_type:amount.total", "row"),
                       ("helloasso.items", "invalid_email:Email", "field"),
                       ("helloasso.orders", "outside_requested_window", "row")}
    # The items of orders 11 and 22 answer "Oui" as their email: loaded, their email field quarantined.
    assert sorted(b["record_key"] for b in got["bad_orders"] if b["scope"] == "field") == ["110", "111", "220"]
    assert got["options_read"] > 0
    # Order 5's second record, dated in November, is outside: quarantined with its items; the first is kept.
    assert [b["record_key"] for b in got["bad_orders"] if b["reason"] == "outside_requested_window"] == \
        ["5", "102", "104", "105"]
    assert {b["reason"] for b in got["bad_payments"]} == {"missing_id", "invalid_date", "outside_requested_window"}
    assert [b["record_key"] for b in got["bad_payments"] if b["reason"] == "outside_requested_window"] == \
        ["9001", "9101"]
    # Nothing read is lost: every payment is loaded in the window or quarantined.
    with duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True) as conn:
        loaded = conn.execute("select count(*) from raw.helloasso_payments where partition_date between ? and ?",
                              [FIRST, LAST]).fetchall()[0][0]
        beyond = conn.execute("select count(*) from raw.helloasso_payments where partition_date > ?",
                              [LAST]).fetchall()[0][0]
    assert got["payments_read"] == loaded + len(got["bad_payments"]) and beyond == 0


def test_reloading_a_window_leaves_the_same_rows(tmp_path: Path) -> None:
    raw_orders, raw_payments = _records()
    with _warehouse(tmp_path / "w.duckdb") as conn:
        _new_load(conn, raw_orders, raw_payments, tmp_path, 7)
        once = _tables(conn)
        _new_load(conn, raw_orders, raw_payments, tmp_path, 7)
        assert _tables(conn) == once


def test_an_empty_window_stages_and_loads_nothing(tmp_path: Path) -> None:
    with _warehouse(tmp_path / "w.duckdb") as conn:
        got = _new_load(conn, [], [], tmp_path, 100)
        assert got == {"orders_read": 0, "payments_read": 0, "bad_orders": [], "bad_payments": [], "items_read": 0,
                       "options_read": 0, "last_order": None}
        assert conn.execute("select count(*) from raw.helloasso_orders").fetchone()[0] == 1  # 2024-06-01 stays
        assert conn.execute("select count(*) from raw.helloasso_payments").fetchone()[0] == 0


def test_staging_consumes_the_records_a_chunk_at_a_time(tmp_path: Path) -> None:
    raw_orders, _ = _records()
    consumed: list[int] = []

    def pages():
        for n, record in enumerate(raw_orders, 1):
            consumed.append(n)
            yield record

    written: list[int] = []
    import alumni_orchestration.ingest.helloasso.client as module

    original = module.flatten_helloasso_order_details

    def spy(chunk, labels):
        written.append(len(chunk))
        return original(chunk, labels)

    module.flatten_helloasso_order_details = spy
    try:
        read, _ = stage_orders(pages(), tmp_path / "o.parquet", tmp_path / "i.parquet", tmp_path / "io.parquet",
                               chunk_size=10)
    finally:
        module.flatten_helloasso_order_details = original
    assert read == len(raw_orders) and max(written) == 10 and sum(written) == read


def test_money_balance_holds_for_the_documented_orders_and_names_an_order_whose_options_are_lost(tmp_path: Path) -> None:
    from alumni_orchestration.ingest.helloasso.client import money_balance
    from tests.fixture_server import fixture

    first, last = "2025-03-01", "2025-03-31"
    staged = StagedWindow(tmp_path / "o.parquet", tmp_path / "i.parquet", tmp_path / "io.parquet",
                          tmp_path / "p.parquet", first, last)
    stage_orders(iter(fixture("helloasso", "orders_with_details.json")["data"]), staged.orders, staged.items,
                 staged.options)
    stage_payments(iter(fixture("helloasso", "payments.json")["data"]), staged.payments)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema raw")
        load_staged(conn, "raw", staged)
        balance = money_balance(conn, "raw", first, last)
        assert balance.passed and balance.orders_checked == 4
        # The items alone, as the loads stored them before options were kept: 5000 cents short on order 21001.
        conn.execute("delete from raw.helloasso_item_options")
        balance = money_balance(conn, "raw", first, last)
        assert not balance.passed and balance.unbalanced == [(21001, 11000, 6000)]
        # Another window's orders are not this window's business.
        assert money_balance(conn, "raw", "2025-04-01", "2025-04-30").orders_checked == 0


def test_staging_pauses_the_collector_only_while_it_stages(tmp_path: Path) -> None:
    """The staged rows are those of the in-memory load (test above, staged with the collector paused);
    the collector runs again afterwards, even when the records fail mid-way."""
    import gc

    raw_orders, raw_payments = _records()
    states: list[bool] = []

    def watched(records):
        for record in records:
            states.append(gc.isenabled())
            yield record

    stage_orders(watched(raw_orders), tmp_path / "o.parquet", tmp_path / "i.parquet", tmp_path / "x.parquet")
    stage_payments(watched(raw_payments), tmp_path / "p.parquet")
    assert states and not any(states) and gc.isenabled()

    def failing():
        yield from raw_orders[:2]
        raise ConnectionError("the provider went away")

    with pytest.raises(ConnectionError):
        stage_orders(failing(), tmp_path / "o2.parquet", tmp_path / "i2.parquet", tmp_path / "x2.parquet")
    assert gc.isenabled()
