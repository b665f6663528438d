"""The documented HelloAsso shapes (tests/fixtures/providers/helloasso) through the REAL assets: a local server
answers the documented examples over a socket, and `dagster asset materialize` loads them, as a new user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from alumni_orchestration.ingest.typed import is_email
from tests.fixture_server import FixtureServer, answer, fixture

ORG = "anciens-exemple"
ORDERS_KEYS = "raw/helloasso_orders,raw/helloasso_items,raw/helloasso_item_options,raw/helloasso_payments"


def _paged(first_page: dict):
    """The documented page, then HelloAsso's end: an empty `data` that still carries a token."""
    last = {"data": [], "pagination": {**first_page["pagination"], "pageIndex": 2}}
    return lambda query, raw: (200, last if query.get("continuationToken") else first_page)


def _routes() -> dict:
    base = f"/v5/organizations/{ORG}"
    return {
        ("POST", "/oauth2/token"): answer(fixture("helloasso", "token.json")),
        ("GET", f"{base}/orders"): _paged(fixture("helloasso", "orders_with_details.json")),
        ("GET", f"{base}/payments"): _paged(fixture("helloasso", "payments.json")),
        ("GET", f"{base}/forms"): _paged(fixture("helloasso", "forms.json")),
        ("GET", f"{base}/forms/Event/gala-2025/public"): answer(fixture("helloasso", "form_public.json")),
    }


def _materialize(env: dict, select: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "alumni_orchestration.definitions",
               "--select", select, *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def loaded(tmp_path: Path):
    """The forms, then the orders, items, options and payments of March 2025, from the documented examples."""
    home = tmp_path / "home"
    (tmp_path / "dagster").mkdir()
    with FixtureServer(_routes()) as server:
        env = {**os.environ, "ALUMNI_HOME": str(home), "DAGSTER_HOME": str(tmp_path / "dagster"),
               "HELLOASSO_API_URL": f"{server.url}/v5", "HELLOASSO_TOKEN_URL": f"{server.url}/oauth2/token",
               "HELLOASSO_CLIENT_ID": "fixture-client", "HELLOASSO_CLIENT_SECRET": "fixture-secret",
               "HELLOASSO_ORGANIZATION_SLUG": ORG, "SENDGRID_API_KEY": "SG.unused", "EVENTBRITE_TOKEN": "unused"}
        runs = [_materialize(env, "raw/helloasso_forms"),
                _materialize(env, ORDERS_KEYS, "--partition-range", "2025-03-01...2025-03-31")]
        requests = list(server.requests)
    return home / "warehouse.duckdb", runs, requests


@pytest.mark.slow
def test_documented_helloasso_shapes_load_through_the_real_assets(loaded) -> None:
    warehouse, runs, requests = loaded
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert "RUN_SUCCESS" in run.stderr + run.stdout and "STEP_FAILURE" not in run.stderr + run.stdout
    logs = "\n".join(run.stdout + run.stderr for run in runs)
    for check, asset in (("rows_conserved", "raw/helloasso_forms"), ("rows_conserved", "raw/helloasso_orders"),
                         ("rows_conserved", "raw/helloasso_payments"), ("money_conserved", "raw/helloasso_orders")):
        assert f"Asset check '{check}' on '{asset}' passed." in logs
    # No secret and no personal data in the run's logs.
    assert "fixture-secret" not in logs and "lea.roux@example.org" not in logs and "Dubois" not in logs
    orders_asked = [q for method, path, q in requests if path.endswith("/orders")]
    assert orders_asked and all(q.get("withDetails") == ["true"] for q in orders_asked)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        def rows(sql: str) -> list[tuple]:
            return conn.execute(sql).fetchall()

        # The event's city, from its public details (the forms listing documents no place).
        assert rows("select form_slug, city from raw.helloasso_forms order by 1") == [("adhesion-2025", None),
                                                                                      ("gala-2025", "Paris")]
        assert rows("select order_id from raw.helloasso_orders order by 1") == [(20499,), (21001,), (21004,), (21005,)]
        assert rows("select count(*) from raw.helloasso_items") == [(6,)]
        assert rows("select item_id, amount_cents from raw.helloasso_item_options order by 1") == [(21001, 3500),
                                                                                                   (21002, 1500)]
        assert rows("select count(*) from raw.helloasso_payments") == [(3,)]
        # No item email that is not an email: the consent "Oui" is no email field; "Email: Oui" is NULL.
        emails = rows("select item_id, email from raw.helloasso_items order by 1")
        assert all(email is None or is_email(email) for _, email in emails)
        assert dict(emails)[21001] == "lea.roux@example.org" and dict(emails)[21004] is None
        # Money conserved per order: the total is the items plus their options.
        assert rows("""
            select o.order_id, o.total_cents,
                   (select coalesce(sum(amount_cents), 0) from raw.helloasso_items i where i.order_id = o.order_id)
                 + (select coalesce(sum(amount_cents), 0) from raw.helloasso_item_options p
                    where p.order_id = o.order_id)
            from raw.helloasso_orders o order by 1""") == [(20499, 2000, 2000), (21001, 11000, 11000),
                                                          (21004, 5000, 5000), (21005, 5000, 5000)]
        # Every quarantine reason is named; the one documented problem is the "Email" answered "Oui".
        quarantine = rows("select source, record_key, reason, scope from raw.quarantine order by all")
        assert all(reason for _, _, reason, _ in quarantine)
        assert quarantine == [("helloasso.items", "21004", "invalid_email:Email", "field")]
