"""Eventbrite as documented, over a real socket: the events listing carries only `venue_id` unless asked
for `expand=venue`, venues answer at /venues/{id}/. The client and then the real assets (the `dagster`
CLI, configured by environment variables as in production) read it: venues filled, nothing crashes,
every quarantined record named with its reason."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from alumni_orchestration.ingest.eventbrite.client import EventbriteClient
from alumni_orchestration.ingest.eventbrite.records import flatten_eventbrite_events
from alumni_orchestration.ingest.http import RetryBudget
from tests.fixture_server import FixtureServer, Handler, answer, fixture

ROOT = Path(__file__).resolve().parents[1]
ORG = "1"  # the documented example's organization_id
TOKEN = "FAKE-eventbrite-token-documented"


def _events_route(listed: dict[str, Any], expanded: dict[str, Any] | None) -> Handler:
    """The events listing: the expanded page only when `expand=venue` is asked (if the server knows it)."""
    def handle(query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        asked = "venue" in ",".join(query.get("expand", [])).split(",")
        return 200, expanded if asked and expanded is not None else listed
    return handle


def _routes(listed: dict[str, Any], expanded: dict[str, Any] | None = None,
            attendees: dict[str, Any] | None = None) -> dict[tuple[str, str], Handler]:
    routes = {
        ("GET", f"/v3/organizations/{ORG}/events/"): _events_route(listed, expanded),
        ("GET", "/v3/venues/1/"): answer(fixture("eventbrite", "venue.json")),
        ("GET", "/v3/venues/2/"): answer(fixture("eventbrite", "venue_without_region.json")),
    }
    if attendees is not None:
        routes[("GET", f"/v3/organizations/{ORG}/attendees/")] = answer(attendees)
    return routes


def _client(server: FixtureServer) -> EventbriteClient:
    return EventbriteClient(base_url=f"{server.url}/v3", token=TOKEN, organization_id=ORG,
                            budget=RetryBudget(max_attempts=1))


def _places(rows: list[dict[str, Any]]) -> dict[str, tuple[str | None, str | None]]:
    return {r["event_id"]: (r["city"], r["region"]) for r in rows}


EXPECTED_PLACES = {"1": (None, None), "2": ("Miami", "FL"), "3": ("Lyon", None)}


def test_the_events_listing_asks_for_the_venue_expansion_and_events_get_their_city() -> None:
    with FixtureServer(_routes(fixture("eventbrite", "organization_events.json"),
                               fixture("eventbrite", "organization_events_expand_venue.json"))) as server:
        rows, bad = flatten_eventbrite_events(_client(server).events())
    assert bad == [] and _places(rows) == EXPECTED_PLACES
    listing = [q for method, path, q in server.requests if path.endswith("/events/")]
    assert listing and all(q.get("expand") == ["venue"] for q in listing)
    assert not [path for _, path, _ in server.requests if "/venues/" in path]  # the expansion was enough


def test_events_listed_without_their_venue_get_it_from_the_venue_endpoint_once_per_venue() -> None:
    listed = fixture("eventbrite", "organization_events.json")
    second_at_venue_1 = copy.deepcopy(listed["events"][1]) | {"id": "4"}
    listed["events"].append(second_at_venue_1)
    with FixtureServer(_routes(listed, expanded=None)) as server:  # a server that ignores expand=venue
        rows, bad = flatten_eventbrite_events(_client(server).events())
    assert bad == [] and _places(rows) == EXPECTED_PLACES | {"4": ("Miami", "FL")}
    fetched = sorted(path for _, path, _ in server.requests if "/venues/" in path)
    assert fetched == ["/v3/venues/1/", "/v3/venues/2/"]  # once each; the online event has no venue to fetch


def test_a_venue_eventbrite_does_not_know_leaves_the_place_unknown_without_failing() -> None:
    listed = fixture("eventbrite", "organization_events.json")
    listed["events"][2]["venue_id"] = "404"
    with FixtureServer(_routes(listed)) as server:
        rows, bad = flatten_eventbrite_events(_client(server).events())
    assert bad == [] and _places(rows) == EXPECTED_PLACES | {"3": (None, None)}


def _odd_attendees() -> dict[str, Any]:
    """The documented attendees page, plus records a provider sends now and then."""
    page = fixture("eventbrite", "organization_attendees.json")
    paid = page["attendees"][1]
    decimal_gross = copy.deepcopy(paid) | {"id": "4"}
    decimal_gross["costs"]["gross"]["value"] = "12.50"
    text_boolean = copy.deepcopy(paid) | {"id": "5", "checked_in": "false"}
    list_order = copy.deepcopy(paid) | {"id": "6", "order_id": ["2"]}
    page["attendees"] += [decimal_gross, text_boolean, list_order]
    return page


def _odd_events(page: dict[str, Any]) -> dict[str, Any]:
    page = copy.deepcopy(page)
    epoch_start = copy.deepcopy(page["events"][1]) | {"id": "9"}
    epoch_start["start"]["utc"] = 1638403200
    page["events"].append(epoch_start)
    return page


@pytest.mark.slow
def test_the_real_assets_load_the_documented_shapes_through_the_dagster_cli(tmp_path: Path) -> None:
    listed = _odd_events(fixture("eventbrite", "organization_events.json"))
    expanded = _odd_events(fixture("eventbrite", "organization_events_expand_venue.json"))
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    dagster_home.mkdir(parents=True)
    with FixtureServer(_routes(listed, expanded, _odd_attendees())) as server:
        env = {**os.environ, "ALUMNI_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
               "EVENTBRITE_BASE_URL": f"{server.url}/v3", "EVENTBRITE_TOKEN": TOKEN,
               "EVENTBRITE_ORGANIZATION_ID": ORG}
        run = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                              "alumni_orchestration.definitions", "--select",
                              "raw/eventbrite_events,raw/eventbrite_attendees"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "Traceback" not in output and TOKEN not in output

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        places = dict(conn.execute("select event_id, (city, region) from raw.eventbrite_events").fetchall())
        attendees = dict(conn.execute("select attendee_id, (gross_cents, checked_in) from raw.eventbrite_attendees"
                                      ).fetchall())
        quarantined = conn.execute("select asset_key, record_key, reason from raw.quarantine order by all").fetchall()
    assert places == EXPECTED_PLACES
    assert attendees == {
        "1": (0, True), "2": (1250, False), "3": (1250, False), "5": (1250, False)}
    assert quarantined == [("raw/eventbrite_attendees", "4", "invalid_field_type:costs.gross.value"),
                           ("raw/eventbrite_attendees", "6", "invalid_field_type:order_id"),
                           ("raw/eventbrite_events", "9", "invalid_field_type:start.utc")]

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    for asset, read, loaded in (("eventbrite_events", 4, 3), ("eventbrite_attendees", 6, 4)):
        event = instance.get_latest_materialization_event(dg.AssetKey(["raw", asset]))
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert (metadata["rows_read"], metadata["rows_loaded"], metadata["rows_quarantined"]) == (
            read, loaded, read - loaded)
        assert json.dumps(metadata, default=str).find("@example") == -1  # no email in the metadata
