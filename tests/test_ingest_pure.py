"""Pure ingestion logic: pagination rules, retry waits, record flattening and quarantine reasons."""

from __future__ import annotations

import datetime as dt

import pytest

from alumni_orchestration.defs.helloasso.assets import paris_window
from alumni_orchestration.defs.sendgrid.assets import flatten_suppressions
from alumni_orchestration.ingest.eventbrite import client as eventbrite
from alumni_orchestration.ingest.eventbrite.records import flatten_eventbrite_attendees
from alumni_orchestration.ingest.helloasso import client as helloasso
from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_orders
from alumni_orchestration.ingest.http import ProviderError, RetryBudget, rate_limit_wait
from alumni_orchestration.ingest.records import parse_timestamp, topic_of
from alumni_orchestration.ingest.sendgrid.suppressions import paginate_offset


def test_eventbrite_pagination_follows_continuation_until_has_more_items_is_false() -> None:
    pages = {None: ([1, 2], True, "c1"), "c1": ([3], True, "c2"), "c2": ([4, 5], False, None)}
    calls = []

    def fetch(params):
        calls.append(params.get("continuation"))
        items, more, token = pages[params.get("continuation")]
        return {"attendees": items, "pagination": {"has_more_items": more, "continuation": token}}

    assert list(eventbrite.paginate(fetch, {}, "attendees", "/x")) == [1, 2, 3, 4, 5]
    assert calls == [None, "c1", "c2"]


def test_eventbrite_pagination_refuses_a_repeating_token() -> None:
    def fetch(params):
        return {"attendees": [1], "pagination": {"has_more_items": True, "continuation": "same"}}

    with pytest.raises(ProviderError, match="repeats"):
        list(eventbrite.paginate(fetch, {}, "attendees", "/x"))


def test_helloasso_pagination_stops_on_empty_data_despite_a_token_and_minus_one_totals() -> None:
    def fetch(params):
        token = params.get("continuationToken")
        page = {None: [1, 2], "t1": [3], "t2": []}[token]
        nxt = {None: "t1", "t1": "t2", "t2": "t3"}[token]
        return {"data": page, "pagination": {"continuationToken": nxt, "totalCount": -1, "totalPages": -1}}

    assert list(helloasso.paginate(fetch, {}, "/orders")) == [1, 2, 3]


def test_suppression_pages_by_offset_until_a_short_page() -> None:
    data = list(range(1234))

    def fetch(params):
        return data[params["offset"]: params["offset"] + params["limit"]]

    assert list(paginate_offset(fetch, "/v3/suppression/bounces", limit=500)) == data


def test_rate_limit_wait_uses_the_reset_header_then_retry_after_then_backoff() -> None:
    assert rate_limit_wait({"X-RateLimit-Reset": "1010"}, now=1000.0, fallback=99) == pytest.approx(10.05)
    assert rate_limit_wait({"Retry-After": "3"}, now=1000.0, fallback=99) == 3
    assert rate_limit_wait({}, now=1000.0, fallback=7) == 7
    budget = RetryBudget(base_delay=1, max_delay=8)
    assert budget.backoff(1, rand=lambda: 1.0) == 1 and budget.backoff(10, rand=lambda: 1.0) == 8


def test_timestamps_with_seven_fraction_digits_and_offsets_become_utc() -> None:
    assert parse_timestamp("2025-05-21T09:45:50.8062172+02:00") == dt.datetime(2025, 5, 21, 7, 45, 50, 806217)
    assert parse_timestamp("2025-03-14T18:00:00Z") == dt.datetime(2025, 3, 14, 18, 0)
    assert parse_timestamp("2025-02-30T10:00:00Z") is None and parse_timestamp(None) is None


def test_paris_window_is_exclusive_and_dst_aware() -> None:
    assert paris_window("2025-03-30", "2025-03-30") == ("2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00")


def test_topic_comes_from_the_hashtag() -> None:
    assert topic_of("Afterwork organisé par l'association. #energie-climat") == "energie-climat"
    assert topic_of(None, "no tag") is None


def test_attendees_without_id_event_or_date_are_quarantined_with_reasons() -> None:
    good = {"id": "1", "event_id": "9", "created": "2025-01-01T10:00:00Z", "changed": "2025-01-02T10:00:00Z",
            "profile": {"email": "a@b.fr"}, "answers": [{"question": "Promo (année de sortie)", "answer": "2012"}],
            "costs": {"gross": {"value": 1000, "currency": "EUR"}}}
    rows, bad = flatten_eventbrite_attendees([good, {"event_id": "9"}, {"id": "2"}, {**good, "id": "3", "changed": "x"}, "junk"])
    assert [r["attendee_id"] for r in rows] == ["1"] and rows[0]["promo"] == "2012" and rows[0]["gross_cents"] == 1000
    assert [b["reason"] for b in bad] == ["missing_id", "missing_event_id", "invalid_field_type:changed", "missing_id"]


def test_helloasso_orders_split_into_orders_and_items_with_custom_fields() -> None:
    order = {"id": 7, "date": "2025-01-05T23:30:00+01:00", "formSlug": "adhesion-2025", "formType": "Membership",
             "payer": {"email": "p@x.fr"}, "amount": {"total": 9000},
             "items": [{"id": 70, "amount": 9000, "type": "Membership", "state": "Processed",
                        "user": {"firstName": "Léa", "lastName": "Roux"},
                        "customFields": [{"name": "Email", "answer": "lea@x.fr"}, {"name": "Promo", "answer": "2010"}]}]}
    orders, items, bad = flatten_helloasso_orders([order, {"id": 8, "date": "nope"}])
    assert orders[0]["partition_date"] == dt.date(2025, 1, 5)
    assert items[0]["email"] == "lea@x.fr" and items[0]["promo"] == "2010"
    assert [b["reason"] for b in bad] == ["invalid_date"]


def test_suppressions_keep_their_kind_and_quarantine_rows_without_email() -> None:
    rows, bad = flatten_suppressions({"bounces": [{"email": "a@b.fr", "created": 1700000000, "reason": "x"}, {}]},
                                     [{"email": "c@d.fr", "group_id": 1, "group_name": "Lettre", "created_at": 1700000001}])
    assert [(r["email"], r["kind"]) for r in rows] == [("a@b.fr", "bounces"), ("c@d.fr", "group_unsubscribes")]
    assert [b["reason"] for b in bad] == ["missing_email"]


def test_attendees_flattened_by_chunks_with_the_collector_paused_equal_one_flatten_of_all() -> None:
    import gc

    import pyarrow as pa

    from alumni_orchestration.ingest.records import RAW_DDL, arrow_schema, flatten_to_arrow, rows_to_arrow
    from tests.fixture_server import fixture

    documented = fixture("eventbrite", "organization_attendees.json")["attendees"]
    records = [{**a, "id": f"{a['id']}{n}"} for n in range(7) for a in documented] + ["not an attendee"]
    states: list[bool] = []

    def watched():
        for record in records:
            states.append(gc.isenabled())
            yield record

    table, bad, read = flatten_to_arrow(watched(), flatten_eventbrite_attendees, RAW_DDL["eventbrite_attendees"],
                                        chunk_size=3)
    rows, rejected = flatten_eventbrite_attendees(records)
    ddl = RAW_DDL["eventbrite_attendees"]
    assert table.equals(pa.concat_tables([rows_to_arrow(rows, ddl, arrow_schema(ddl))]))
    assert bad == rejected and read == len(records) and len(rows) == 7 * len(documented)
    assert states and not any(states) and gc.isenabled()
