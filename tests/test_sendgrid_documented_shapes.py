"""End to end: SendGrid's documented examples load through the real assets with `dagster asset materialize`.

The documented webhook events are landed as batches over two days (one batch re-delivered on the second
day, and one batch with odd events), the documented suppression lists are served over a real socket by
FixtureServer, and the two SendGrid source assets are materialized by the CLI with the resources pointed at
them: no crash, each event once, booleans as documented, every quarantine reason named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from alumni_orchestration.ingest.sendgrid.suppressions import GLOBAL_LISTS
from alumni_orchestration.webhook.landing import Landing
from tests.fixture_server import FIXTURES, FixtureServer, answer, fixture
from tests.test_sendgrid_fixtures import EVENT_FILES, documented_events

pytestmark = pytest.mark.slow  # a generated association, dbt or a Dagster subprocess

ROOT = Path(__file__).resolve().parents[1]
DAY1, DAY2 = "2026-11-19", "2026-11-20"
ODD_BATCH = [
    {**fixture("sendgrid", "event_open.json")[0], "sg_event_id": "odd-false-text", "sg_machine_open": "false"},
    {**fixture("sendgrid", "event_open.json")[0], "sg_event_id": "odd-event-list", "event": ["open", "click"]},
    {**fixture("sendgrid", "event_click.json")[0], "sg_event_id": "odd-group", "asm_group_id": "ten"},
    {**fixture("sendgrid", "event_delivered.json")[0], "sg_event_id": {"id": 1}},
]


def _land(landing: Landing) -> None:
    for n, name in enumerate(EVENT_FILES):
        landing.write_batch(DAY1, f"{1_000 + n}-{name}", (FIXTURES / "sendgrid" / name).read_bytes())
    # SendGrid re-delivered the open batch after midnight; then a batch with odd events.
    landing.write_batch(DAY2, "2000-event_open.json", (FIXTURES / "sendgrid" / "event_open.json").read_bytes())
    landing.write_batch(DAY2, "2001-odd.json", json.dumps(ODD_BATCH).encode())


def _materialize(env: dict[str, str], *selections: list[str]) -> list[str]:
    """One `dagster asset materialize` per selection, one after the other: two processes side by side on one
    SQLite instance and one warehouse only test their locks, and failed here once on a loaded machine."""
    dagster = str(Path(sys.executable).parent / "dagster")
    outputs = []
    for args in selections:
        run = subprocess.run([dagster, "asset", "materialize", "-m", "alumni_orchestration.definitions", *args],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
        assert "STEP_FAILURE" not in output and "RUN_FAILURE" not in output
        outputs.append(output)
    return outputs


def test_documented_shapes_load_through_the_real_assets(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "landing")
    _land(landing)
    routes = {("GET", f"/v3/suppression/{kind}"): answer(fixture("sendgrid", f"suppression_{kind}.json"))
              for kind in GLOBAL_LISTS}
    routes[("GET", "/v3/asm/suppressions")] = answer(fixture("sendgrid", "asm_suppressions.json"))
    (tmp_path / "dagster").mkdir()
    warehouse = tmp_path / "warehouse.duckdb"
    with FixtureServer(routes) as server:
        env = {**os.environ, "ALUMNI_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster"),
               "ALUMNI_WAREHOUSE": str(warehouse), "SENDGRID_WEBHOOK_LANDING": str(landing.location),
               "SENDGRID_HOST": server.url, "SENDGRID_API_KEY": "SG.documented-shapes-key",
               "ALUMNI_SANDBOX_URL": server.url, "EVENTBRITE_TOKEN": "unused", "HELLOASSO_CLIENT_ID": "unused",
               "HELLOASSO_CLIENT_SECRET": "unused"}
        events_run, _ = _materialize(env, ["--select", "raw/sendgrid_events", "--partition-range", f"{DAY1}...{DAY2}"],
                                     ["--select", "raw/sendgrid_suppressions"])
        asked = {path for method, path, _ in server.requests}
    assert asked == set(routes_path for _, routes_path in routes)
    for check in ("rows_conserved", "sg_event_id_unique"):
        assert f"Asset check '{check}' on 'raw/sendgrid_events' passed" in events_run
    assert "SG.documented-shapes-key" not in events_run

    documented = documented_events()
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute("select sg_event_id, partition_date::varchar, sg_machine_open, event, asm_group_id "
                            "from raw.sendgrid_events").fetchall()
        quarantined = conn.execute("select reason, record_key, partition_key from raw.quarantine "
                                   "where asset_key = 'raw/sendgrid_events' order by reason").fetchall()
        suppressions = conn.execute("select kind, count(*), count(created_at) from raw.sendgrid_suppressions "
                                    "group by kind order by kind").fetchall()
        groups = conn.execute("select group_id, group_name from raw.sendgrid_suppressions "
                              "where kind = 'group_unsubscribes' order by all").fetchall()
        suppression_quarantine = conn.execute("select count(*) from raw.quarantine "
                                              "where asset_key = 'raw/sendgrid_suppressions'").fetchone()[0]

    by_id = {r[0]: r for r in rows}
    assert len(by_id) == len(rows) == len(documented) + 1  # each event once, plus the one odd event that loads
    assert set(by_id) == {e["sg_event_id"] for e in documented.values()} | {"odd-false-text"}
    assert by_id[documented["event_open"]["sg_event_id"]][1] == DAY1  # the re-delivered batch: its first day
    machine = {by_id[e["sg_event_id"]][2] for name, e in documented.items() if name != "event_open_machine"}
    assert machine == {False} and by_id[documented["event_open_machine"]["sg_event_id"]][2] is True
    assert by_id["odd-false-text"][2] is False  # "false" as text is false
    assert by_id[documented["event_click"]["sg_event_id"]][4] == 1
    assert quarantined == [("invalid_field_type:asm_group_id", "odd-group", DAY2),
                           ("invalid_field_type:event", "odd-event-list", DAY2),
                           ("invalid_field_type:sg_event_id", None, DAY2)]

    assert suppressions == [("blocks", 2, 2), ("bounces", 2, 2), ("group_unsubscribes", 3, 3),
                            ("invalid_emails", 2, 2), ("spam_reports", 2, 2), ("unsubscribes", 2, 2)]
    assert groups == [(1, "Weekly News"), (2, "Daily News"), (2, "Daily News")] and suppression_quarantine == 0
