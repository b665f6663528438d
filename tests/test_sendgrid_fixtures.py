"""SendGrid's documented examples (tests/fixtures/providers/sendgrid, see SOURCES.md) read and flatten to the
typed values the documentation gives them, with no quarantine; both load paths agree on them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from alumni_orchestration.ingest.sendgrid.events import COLUMNS, events_table, read_day
from alumni_orchestration.ingest.sendgrid.records import flatten_sendgrid_event
from alumni_orchestration.ingest.sendgrid.suppressions import GLOBAL_LISTS, flatten_suppressions
from alumni_orchestration.webhook.landing import Landing
from tests.fixture_server import FIXTURES, fixture

DAY = "2026-11-20"
EVENT_FILES = sorted(p.name for p in (FIXTURES / "sendgrid").glob("event_*.json"))


def documented_events() -> dict[str, dict]:
    """Each documented event by its fixture's name (one event per fixture)."""
    return {name.removesuffix(".json"): event for name in EVENT_FILES for event in fixture("sendgrid", name)}


def _land(tmp_path: Path) -> Landing:
    landing = Landing(tmp_path / "landing")
    for n, name in enumerate(EVENT_FILES):
        landing.write_batch(DAY, f"{100 + n}-{name}", (FIXTURES / "sendgrid" / name).read_bytes())
    return landing


def _rows(tmp_path: Path) -> dict[str, dict]:
    date = dt.date.fromisoformat(DAY)
    return {name: flatten_sendgrid_event(event, date) for name, event in documented_events().items()}


def test_every_documented_event_type_has_a_fixture() -> None:
    kinds = {e["event"] for e in documented_events().values()}
    assert kinds == {"processed", "dropped", "delivered", "deferred", "bounce", "open", "click", "spamreport",
                     "unsubscribe", "group_unsubscribe", "group_resubscribe"}


def test_documented_events_are_read_without_quarantine_and_both_paths_agree(tmp_path: Path) -> None:
    day = read_day(_land(tmp_path), DAY)
    assert day.rejected == [] and day.stats.duplicates == 0
    assert day.stats.events_read == day.stats.events_kept == len(EVENT_FILES)
    columnar = events_table(day).to_pylist()
    date = dt.date.fromisoformat(DAY)
    by_row = [flatten_sendgrid_event(e, date, b) for e, b in zip(day.events, day.batches, strict=True)]
    assert [list(r.values()) for r in columnar] == [[r[c] for c in COLUMNS] for r in by_row]


def test_documented_events_flatten_to_the_documented_values(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    assert rows["event_open"]["sg_machine_open"] is False and rows["event_open_machine"]["sg_machine_open"] is True
    assert all(r["sg_machine_open"] is False for name, r in rows.items() if not name.startswith("event_open"))
    assert rows["event_open"]["event_at"] == dt.datetime(2017, 12, 15, 0, 59, 29)  # 1513299569, UTC
    click = rows["event_click"]
    assert (click["url"], click["url_offset_index"], click["asm_group_id"]) == ("http://example.com/blog/news.html", 0, 1)
    assert click["category"] == '["category1", "category2"]' and click["useragent"].startswith("Mozilla/5.0 (iPhone")
    assert json.loads(click["custom_args"]) == {"unique_arg_key": "unique_arg_value", "newsletter": {
        "newsletter_user_list_id": "10557865", "newsletter_id": "1943530", "newsletter_send_id": "2308608"}}
    assert rows["event_open_category_string"]["category"] == '["newuser"]'
    assert rows["event_open_category_array"]["category"] == '["newuser", "transactional"]'
    assert rows["event_processed_marketing_campaign"]["category"] == "[]"
    assert json.loads(rows["event_click_unique_args"]["custom_args"]) == {"userid": "1123", "template": "welcome"}
    assert [rows[n]["bounce_type"] for n in ("event_bounce", "event_bounce_blocked", "event_bounce_async")] == [
        "bounce", "blocked", "bounce"]
    assert rows["event_bounce"]["reason"] == "500 unknown recipient" and rows["event_bounce"]["status"] == "5.0.0"
    assert rows["event_bounce_async"]["sg_message_id"] is None and rows["event_bounce"]["sg_message_id"]
    assert rows["event_dropped"]["bounce_type"] is None and rows["event_dropped"]["reason"] == "Bounced Address"
    assert rows["event_deferred"]["sg_message_id"].startswith(" 14c5d75ce93")  # as documented, not trimmed
    assert json.loads(rows["event_deferred"]["custom_args"]) == {"domain": "example.com", "from": "test@example.com"}
    assert rows["event_group_unsubscribe"]["asm_group_id"] == rows["event_group_resubscribe"]["asm_group_id"] == 10
    assert rows["event_delivered"]["custom_args"] is None and rows["event_processed"]["custom_args"] is None


@pytest.mark.parametrize("event,reason", [
    # The Single Send example's timestamp is in milliseconds, though the property is documented in seconds.
    ({"email": "alex@example.com", "event": "open", "sg_event_id": "sendgrid_internal_event_id",
      "timestamp": 1591726752372}, "invalid_timestamp"),
    ({"event": "account_status_change", "sg_event_id": "MjEzNTg5OTcyOC10ZXJtaW5hdGUtMTcwNzg1MTUzMQ",
      "timestamp": 1709142428, "type": "compliance_suspend"}, "unknown_event_type"),
])
def test_documented_payloads_that_are_not_loadable_email_events_are_quarantined_by_name(
        tmp_path: Path, event: dict, reason: str) -> None:
    landing = Landing(tmp_path / "landing")
    landing.write_batch(DAY, "1-a.json", json.dumps([event]).encode())
    day = read_day(landing, DAY)
    assert day.events == [] and [q["reason"] for q in day.rejected] == [reason] and day.stats.conserved()


def documented_suppressions() -> tuple[dict[str, list], list]:
    return ({kind: fixture("sendgrid", f"suppression_{kind}.json") for kind in GLOBAL_LISTS},
            fixture("sendgrid", "asm_suppressions.json"))


def test_documented_suppression_lists_flatten_to_typed_rows() -> None:
    lists, groups = documented_suppressions()
    rows, bad = flatten_suppressions(lists, groups)
    assert bad == [] and len(rows) == sum(map(len, lists.values())) + len(groups) == 13
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    assert by_kind["bounces"][0]["created_at"] == dt.datetime(2009, 8, 15, 12, 0)  # 1250337600
    assert by_kind["bounces"][0]["status"] == "5.1.1" and by_kind["blocks"][1]["status"] == "4.0.0"
    assert by_kind["spam_reports"][0]["reason"] is None and by_kind["unsubscribes"][1]["email"] == "user2@example.com"
    assert by_kind["invalid_emails"][0]["reason"] == "Mail domain mentioned in email address is unknown"
    assert [(r["group_id"], r["group_name"], r["created_at"]) for r in by_kind["group_unsubscribes"]] == [
        (1, "Weekly News", dt.datetime(2014, 9, 17, 20, 45, 4)), (2, "Daily News", dt.datetime(2014, 9, 23, 17, 34, 31)),
        (2, "Daily News", dt.datetime(2014, 9, 23, 17, 34, 31))]
    assert all(r["group_id"] is None for r in rows if r["kind"] != "group_unsubscribes")


@pytest.mark.parametrize("record,reason", [
    ({"email": "a@example.com", "created": "yesterday"}, "invalid_field_type:created"),
    ({"email": ["a@example.com"], "created": 1443651141}, "invalid_field_type:email"),
    ({"email": "a@example.com", "created": 1443651141, "status": {"code": 5}}, "invalid_field_type:status"),
    ({"created": 1443651141}, "missing_email"),
    ("a@example.com", "not_an_object"),
])
def test_one_odd_suppression_is_quarantined_alone(record, reason: str) -> None:
    lists, groups = documented_suppressions()
    lists["blocks"] = [*lists["blocks"], record]
    rows, bad = flatten_suppressions(lists, [*groups, {**groups[0], "group_id": "2.5"}])
    assert [b["reason"] for b in bad] == [reason, "invalid_field_type:group_id"]
    assert len(rows) == 13
