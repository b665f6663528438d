"""The sandbox answers listings from indexes built once: every page must be byte for byte what a plain
scan of its data gives (the sandbox's behaviour before the indexes), including after it adds an order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from alumni_orchestration.ingest.eventbrite.client import EventbriteClient
from alumni_orchestration.ingest.records import parse_timestamp
from alumni_orchestration.sandbox.pagination import eventbrite_page, helloasso_page
from alumni_orchestration.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

WINDOW = [("from", "2024-06-01T00:00:00+02:00"), ("to", "2025-03-01T00:00:00+01:00")]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- the plain scans: what the sandbox computed for every page before it indexed its data ----
def _scan_attendees(attendees: list[dict], event_id: str | None, changed_since: str | None,
                    status: str | None) -> list[dict]:
    return [a for a in attendees if (event_id is None or a["event_id"] == event_id)
            and (not changed_since or a["changed"] >= changed_since)
            and (not status or (status == "attending") != a["cancelled"])]


def _in_window(date: str, start: str | None, end: str | None) -> bool:
    moment = parse_timestamp(date)
    lo, hi = parse_timestamp(start) if start else None, parse_timestamp(end) if end else None
    return moment is not None and (lo is None or moment >= lo) and (hi is None or moment < hi)


def _scan_helloasso(orders: list[dict], path: str, query: dict[str, list[str]]) -> list[dict]:
    parts = path.strip("/").split("/")
    form_types = query.get("formTypes") or query.get("formType") or []
    start, end = (query.get("from") or [None])[0], (query.get("to") or [None])[0]
    if parts[2] == "forms":
        orders = [o for o in orders if o["formType"] == parts[3] and o["formSlug"] == parts[4]]
    orders = [o for o in orders if not form_types or o["formType"] in form_types]
    if parts[2] == "payments":
        rows = [{**p, "order": {"id": o["id"], "date": o["date"], "formSlug": o["formSlug"],
                                "formType": o["formType"]}, "payer": o["payer"]}
                for o in orders for p in o.get("payments", []) if _in_window(p["date"], start, end)]
        rows.sort(key=lambda p: (p["date"], p["id"]))
        return rows
    rows = [o for o in orders if _in_window(o["date"], start, end)]
    rows.sort(key=lambda o: (o["date"], o["id"]), reverse=(query.get("sortOrder") or [""])[0] == "Desc")
    if parts[2] == "items":
        return [{**i, "order": {"id": o["id"], "date": o["date"], "formSlug": o["formSlug"],
                                "formType": o["formType"]}, "payer": o["payer"]} for o in rows for i in o["items"]]
    if (query.get("withDetails") or ["false"])[0].lower() != "true":
        return [{k: v for k, v in o.items() if k not in ("items", "payments")} for o in rows]
    return rows


@pytest.fixture
def sandbox_data(small_association: Path, tmp_path: Path) -> Path:
    data = tmp_path / "association"
    shutil.copytree(small_association, data)
    return data


def test_eventbrite_attendee_pages_are_those_of_a_plain_scan(sandbox_data: Path) -> None:
    manifest = json.loads((sandbox_data / "manifest.json").read_text())
    org = manifest["organization"]["eventbrite_id"]
    events = _jsonl(sandbox_data / "providers/eventbrite/events.jsonl")
    attendees = _jsonl(sandbox_data / "providers/eventbrite/attendees.jsonl")
    auth = {"Authorization": "Bearer tok"}
    cases = [{}, {"page_size": "3"}, {"changed_since": "2025-01-01T00:00:00Z"}, {"status": "attending"},
             {"status": "not_attending", "page_size": "4"}]
    compared = multi_page = 0
    with SandboxServer(sandbox_data) as sbx:
        base = f"{sbx.base_url}/eventbrite/v3"
        targets = [(f"/events/{e['id']}/attendees/", e["id"], str(e["id"])) for e in events]
        targets.append((f"/organizations/{org}/attendees/", None, "org-attendees"))
        for path, event_id, prefix in targets:
            for params in cases:
                changed, status = params.get("changed_since"), params.get("status")
                rows = _scan_attendees(attendees, event_id, changed, status)
                size, continuation, pages = int(params.get("page_size", "50")), None, 0
                while True:
                    expected = eventbrite_page(rows, "attendees", continuation, size, f"{prefix}:{changed}:{status}")
                    answer = requests.get(base + path, params=params | ({"continuation": continuation} if continuation
                                                                        else {}), headers=auth, timeout=10)
                    assert answer.status_code == 200 and answer.content == json.dumps(expected).encode(), (path, params)
                    compared, pages = compared + 1, pages + 1
                    if not expected["pagination"]["has_more_items"]:
                        break
                    continuation = expected["pagination"]["continuation"]
                multi_page += pages > 1
        missing = requests.get(f"{base}/events/nope/attendees/", headers=auth, timeout=10)
        other_org = requests.get(f"{base}/organizations/1/attendees/", headers=auth, timeout=10)
        # the client's organisation-level listing gives every attendee once
        client = EventbriteClient(base, "tok", org)
        listed = [a["id"] for a in client.organization_attendees()]
    assert missing.status_code == 404 and missing.json()["error"] == "NOT_FOUND"
    assert other_org.status_code == 404
    assert sorted(listed) == sorted(a["id"] for a in attendees) and len(set(listed)) == len(listed)
    assert compared > 2 * len(targets) * len(cases) / 2 and multi_page > len(events)  # real paging happened


def _helloasso_queries(forms: list[dict]) -> list[tuple[str, list[tuple[str, str]]]]:
    queries = [("/orders", [("pageSize", "100")]), ("/orders", [("pageSize", "100"), ("withDetails", "true")] + WINDOW),
               ("/orders", [("pageSize", "37"), ("sortOrder", "Desc"), ("formTypes", "Membership")]),
               ("/orders", [("formTypes", "Event"), ("formTypes", "Membership"), ("withDetails", "True")] + WINDOW),
               ("/orders", [("from", "2025-01-01T00:00:00Z"), ("pageSize", "50")]),
               ("/orders", [("to", "2024-09-01T00:00:00Z"), ("pageSize", "90")]),
               ("/orders", [("from", "not a date"), ("pageSize", "100")]),
               ("/items", [("pageSize", "100")] + WINDOW), ("/items", [("pageSize", "100"), ("sortOrder", "Desc")]),
               ("/payments", [("pageSize", "100")]), ("/payments", [("pageSize", "60"), ("formType", "Membership")] + WINDOW)]
    for day in ("2024-03-02", "2025-09-15", "2025-12-01"):
        window = [("from", f"{day}T00:00:00+01:00"), ("to", f"{day}T23:59:59+01:00")]
        queries += [("/orders", [("pageSize", "100"), ("withDetails", "true")] + window),
                    ("/payments", [("pageSize", "100")] + window)]
    for form in forms[::3]:
        path = f"/forms/{form['formType']}/{form['formSlug']}/orders"
        queries += [(path, [("pageSize", "20"), ("withDetails", "true")]), (path, [("pageSize", "20")] + WINDOW)]
    return queries


def test_helloasso_order_and_payment_pages_are_those_of_a_plain_scan_even_after_new_orders(sandbox_data: Path) -> None:
    manifest = json.loads((sandbox_data / "manifest.json").read_text())
    slug = manifest["organization"]["helloasso_slug"]
    forms = _jsonl(sandbox_data / "providers/helloasso/forms.jsonl")
    queries = _helloasso_queries(forms)
    compared = multi_page = 0
    with SandboxServer(sandbox_data) as sbx:
        helloasso = sbx.sandbox.providers["helloasso"]
        token = requests.post(f"{sbx.base_url}/helloasso/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        base = f"{sbx.base_url}/helloasso/v5/organizations/{slug}"

        def compare_all() -> None:
            nonlocal compared, multi_page
            orders = helloasso.all_orders()
            for path, params in queries:
                query: dict[str, list[str]] = {}
                for name, value in params:
                    query.setdefault(name, []).append(value)
                rows = _scan_helloasso(orders, f"/organizations/{slug}{path}", query)
                form_types = query.get("formTypes") or query.get("formType") or []
                signature = json.dumps([f"/organizations/{slug}{path}", sorted(form_types),
                                        (query.get("from") or [None])[0], (query.get("to") or [None])[0]])
                size, token_, pages = int((query.get("pageSize") or ["20"])[0]), None, 0
                while True:
                    expected = helloasso_page(rows, token_, size, signature)
                    answer = requests.get(base + path, headers=auth, timeout=10,
                                          params=params + ([("continuationToken", token_)] if token_ else []))
                    assert answer.status_code == 200 and answer.content == json.dumps(expected).encode(), (path, params)
                    compared, pages = compared + 1, pages + 1
                    if not expected["data"]:
                        break
                    token_ = expected["pagination"]["continuationToken"]
                multi_page += pages > 2

        compare_all()
        before = len(helloasso.all_orders())
        # a simulated recipient pays after a dues reminder: the sandbox adds a membership order
        member = next(iter(sbx.sandbox.shared.recipients.values()))
        helloasso.add_membership_order({"member_id": member.member_id, "paid_at": 1746000000, "cycle": 2025})
        helloasso.add_membership_order({"member_id": member.member_id, "paid_at": 1725000000, "cycle": 2024})
        assert len(helloasso.all_orders()) == before + 2
        compare_all()
        unknown = requests.get(f"{base}/nothing", headers=auth, timeout=10)
    assert unknown.status_code == 404
    assert compared > 4 * len(queries) and multi_page >= 10


def test_records_and_world_truth_are_those_of_the_files(sandbox_data: Path) -> None:
    """The sandbox keeps records as their JSON lines and the world's truth compactly, loaded on first use:
    what it reads back is what the files say."""
    from alumni_orchestration.sandbox.server import Sandbox
    from alumni_orchestration.sandbox.world import load_dues_truth, load_recipients

    sandbox = Sandbox(sandbox_data)
    assert list(sandbox.providers["helloasso"].all_orders()) == _jsonl(sandbox_data / "providers/helloasso/orders.jsonl")
    assert ([a.record() for a in sandbox.providers["eventbrite"].attendees]
            == _jsonl(sandbox_data / "providers/eventbrite/attendees.jsonl"))
    world = sandbox.shared
    assert world._recipients is None and world._dues_truth is None  # not loaded until mail is sent
    assert world.recipients == load_recipients(sandbox_data)
    truth = load_dues_truth(sandbox_data)
    assert truth and len(world.dues_truth) == len(truth)
    for key, value in truth.items():
        got = world.dues_truth.get(key, (0.0, 0))
        assert got == value and type(got[0]) is float and type(got[1]) is int
    assert world.dues_truth.get((-5, 2025), (0.0, 0)) == (0.0, 0)
    assert world.dues_truth.get((next(iter(truth))[0], 1900), "none") == "none"
