"""The HelloAsso client against a local server answering HelloAsso's documented examples over a real socket."""

from __future__ import annotations

from alumni_orchestration.ingest.helloasso.client import HelloAssoClient
from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_forms
from tests.fixture_server import FixtureServer, answer, fixture

ORG = "anciens-exemple"


def _routes(public_status: int = 200) -> dict:
    forms = fixture("helloasso", "forms.json")
    last = {"data": [], "pagination": forms["pagination"]}
    return {
        ("POST", "/oauth2/token"): answer(fixture("helloasso", "token.json")),
        ("GET", f"/v5/organizations/{ORG}/forms"): lambda q, raw: (200, last if q.get("continuationToken") else forms),
        ("GET", f"/v5/organizations/{ORG}/forms/Event/gala-2025/public"):
            answer(fixture("helloasso", "form_public.json") if public_status == 200 else {"message": "Not found"},
                   public_status),
    }


def _client(server: FixtureServer) -> HelloAssoClient:
    return HelloAssoClient(f"{server.url}/v5", f"{server.url}/oauth2/token", "client", "secret", ORG)


def test_an_events_city_comes_from_its_public_details_the_listing_has_no_place() -> None:
    with FixtureServer(_routes()) as server:
        forms = list(_client(server).forms_with_place())
        asked = [path for _, path, _ in server.requests]
    rows, bad = flatten_helloasso_forms(forms)
    assert bad == [] and [(r["form_slug"], r["city"]) for r in rows] == [("gala-2025", "Paris"), ("adhesion-2025", None)]
    # One call for the Event form's details; none for the Membership form.
    assert asked.count(f"/v5/organizations/{ORG}/forms/Event/gala-2025/public") == 1
    assert not any("adhesion-2025" in path for path in asked)


def test_a_form_without_public_details_keeps_no_city_and_loads() -> None:
    with FixtureServer(_routes(public_status=404)) as server:
        rows, bad = flatten_helloasso_forms(list(_client(server).forms_with_place()))
    assert bad == [] and [(r["form_slug"], r["city"]) for r in rows] == [("gala-2025", None), ("adhesion-2025", None)]
