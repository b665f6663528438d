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


def _stored_as_the_first_load_left_it(tmp_path) -> dict:
    """The places a first load stored, read back from a warehouse table as the asset reads them."""
    import duckdb

    from alumni_orchestration.ingest.helloasso.client import stored_places
    from alumni_orchestration.ingest.records import RAW_DDL

    with FixtureServer(_routes()) as server:
        rows, _ = flatten_helloasso_forms(list(_client(server).forms_with_place()))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        conn.execute("create schema raw")
        conn.execute(f"create table raw.helloasso_forms ({RAW_DDL['helloasso_forms']})")
        conn.executemany("insert into raw.helloasso_forms values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [[r[c] for c in ("form_slug", "form_type", "title", "description", "topic", "start_at",
                                          "end_at", "city", "created_at", "updated_at")] for r in rows])
        return stored_places(conn)


def test_an_unchanged_forms_place_is_kept_and_an_edited_ones_read_again(tmp_path) -> None:
    known = _stored_as_the_first_load_left_it(tmp_path)
    assert list(known) == [("Event", "gala-2025")]
    with FixtureServer(_routes()) as server:
        client = _client(server)
        again = flatten_helloasso_forms(list(client.forms_with_place(known)))[0]
        asked = [path for _, path, _ in server.requests]
    assert [(r["form_slug"], r["city"]) for r in again] == [("gala-2025", "Paris"), ("adhesion-2025", None)]
    assert not any(path.endswith("/public") for path in asked)
    assert (client.details_read, client.places_kept) == (0, 1)

    edited = {key: (updated.replace(year=updated.year - 1), city) for key, (updated, city) in known.items()}
    with FixtureServer(_routes()) as server:
        client = _client(server)
        rows = flatten_helloasso_forms(list(client.forms_with_place(edited)))[0]
        asked = [path for _, path, _ in server.requests]
    assert asked.count(f"/v5/organizations/{ORG}/forms/Event/gala-2025/public") == 1
    assert (client.details_read, client.places_kept) == (1, 0) and rows[0]["city"] == "Paris"
