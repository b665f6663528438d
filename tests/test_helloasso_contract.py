"""The sandbox's HelloAsso answers held against HelloAsso's documented shapes (tests/fixtures/providers/helloasso,
see SOURCES.md), field by field: every key the sandbox sends is a documented key of its model, with the JSON type
the documentation gives it, and every enum value is a documented one. The sandbox and the flatteners were
written from one understanding of the API; this test holds that understanding to the documentation."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import requests

from alumni_orchestration.ingest.helloasso.client import HelloAssoClient
from alumni_orchestration.sandbox.providers.helloasso import DEFAULT_CLIENT
from alumni_orchestration.sandbox.server import SandboxServer
from tests.fixture_server import fixture

ORG = "anciens-exemple"
# Documented enums (HelloAsso's OpenAPI; see SOURCES.md), by the path of the field that holds them.
ENUMS: dict[str, set[str]] = {
    "order.formType": {"CrowdFunding", "Membership", "Event", "Donation", "PaymentForm", "Checkout", "Shop"},
    "order.items.type": {"Donation", "Payment", "Registration", "Membership", "MonthlyDonation", "MonthlyPayment",
                         "OfflineDonation", "Contribution", "Bonus", "Product"},
    "order.items.state": {"Waiting", "Processed", "Registered", "Deleted", "Unknown", "Canceled", "Refused",
                          "Abandoned"},
    "order.items.customFields.type": {"Date", "TextInput", "FreeText", "ChoiceList", "File", "YesNo", "Phone",
                                      "Zipcode", "Number"},
    "order.items.options.priceCategory": {"Fixed", "Pwyw", "Free"},
    "order.payments.type": {"Offline", "Credit", "Debit"},
    "order.payments.paymentMeans": {"None", "Card", "Sepa", "Check", "Cash", "BankTransfer", "Other"},
    "order.payments.state": {"Pending", "Authorized", "Refused", "Unknown", "Registered", "Error", "Refunded",
                             "Refunding", "Waiting", "Canceled", "Contested", "WaitingBankValidation",
                             "WaitingBankWithdraw", "Abandoned", "WaitingAuthentication", "AuthorizedPreprod",
                             "Corrected", "Deleted", "Inconsistent", "NoDonation", "Init"},
    "form.state": {"Public", "Private", "Draft", "Deleted", "Disabled"},
}
ENUMS |= {"payment.type": ENUMS["order.payments.type"], "payment.paymentMeans": ENUMS["order.payments.paymentMeans"],
          "payment.state": ENUMS["order.payments.state"], "payment.order.formType": ENUMS["order.formType"],
          "form.formType": ENUMS["order.formType"]}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def _shape(records: list[Any], path: str, into: dict[str, dict[str, set[str]]]) -> dict[str, dict[str, set[str]]]:
    """For each object path (order, order.items, order.items.options, ...): its keys and their JSON types.
    The elements of an array of objects are described under the array's path."""
    for record in records:
        if not isinstance(record, dict):
            continue
        for key, value in record.items():
            into[path].setdefault(key, set()).add(_json_type(value))
            children = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
            _shape([c for c in children if isinstance(c, dict)], f"{path}.{key}", into)
    return into


def _values(records: list[Any], path: list[str]) -> set[Any]:
    found: set[Any] = set()
    for record in records:
        value = record.get(path[0]) if isinstance(record, dict) else None
        if len(path) == 1:
            if isinstance(value, str):
                found.add(value)
        elif isinstance(value, list):
            found |= _values(value, path[1:])
        elif isinstance(value, dict):
            found |= _values([value], path[1:])
    return found


def _departures(model: str, documented: list[dict], served: list[dict]) -> set[str]:
    """Keys the documentation does not give the model, types it does not give the key, values out of its enums."""
    expected = _shape(documented, model, defaultdict(dict))
    got = _shape(served, model, defaultdict(dict))
    found = set()
    for path, keys in got.items():
        if path not in expected:
            continue  # inside an undocumented key, which is reported once, at its own path
        for key, types in keys.items():
            if key not in expected.get(path, {}):
                found.add(f"{path}.{key}: an undocumented key")
            elif not types <= expected[path][key] | {"null"}:
                found.add(f"{path}.{key}: {sorted(types)} where the documentation gives {sorted(expected[path][key])}")
    for field, allowed in ENUMS.items():
        head, *rest = field.split(".")
        if head == model and (outside := _values(served, rest) - allowed):
            found.add(f"{field}: {sorted(outside)} is not a documented value")
    return found


@pytest.fixture(scope="module")
def served(small_association: Path) -> dict[str, Any]:
    """The sandbox's answers over a small generated association: token, forms, orders with details, payments."""
    with SandboxServer(small_association) as sbx:
        base = f"{sbx.base_url}/helloasso"
        client_id, secret = DEFAULT_CLIENT
        token = requests.post(f"{base}/oauth2/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}).json()
        client = HelloAssoClient(f"{base}/v5", f"{base}/oauth2/token", client_id, secret, ORG)
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        page = requests.get(f"{base}/v5/organizations/{ORG}/orders", timeout=10, params={"withDetails": "true"},
                            headers=auth).json()
        forms = list(client.forms())
        event = next(f for f in forms if f["formType"] == "Event")
        public = requests.get(f"{base}/v5/organizations/{ORG}/forms/Event/{event['formSlug']}/public", timeout=10,
                              headers=auth)
        return {"token": token, "orders_page": page, "forms": forms,
                "public": public.json() if public.status_code == 200 else public.status_code,
                "orders": list(client.orders("2000-01-01T00:00:00+01:00", "2100-01-01T00:00:00+01:00")),
                "payments": list(client.payments("2000-01-01T00:00:00+01:00", "2100-01-01T00:00:00+01:00"))}


def _all_departures(served: dict[str, Any]) -> set[str]:
    found = set()
    for model, name, records in (("order", "orders_with_details.json", served["orders"]),
                                 ("payment", "payments.json", served["payments"]),
                                 ("form", "forms.json", served["forms"])):
        found |= _departures(model, fixture("helloasso", name)["data"], records)
    found |= _departures("token", [fixture("helloasso", "token.json")], [served["token"]])
    if isinstance(served["public"], dict):
        found |= _departures("public", [fixture("helloasso", "form_public.json")], [served["public"]])
    else:
        found.add(f"public: GET /organizations/{{slug}}/forms/{{formType}}/{{formSlug}}/public answers {served['public']}")
    found |= _departures("page", [fixture("helloasso", "orders_with_details.json")],
                         [{k: v for k, v in served["orders_page"].items() if k != "data"}])
    return found


@pytest.mark.slow
def test_the_sandbox_serves_every_helloasso_model_it_is_asked_for(served) -> None:
    assert served["orders"] and served["payments"] and served["forms"]
    assert served["token"]["token_type"] == "bearer"
    assert any(item.get("customFields") for order in served["orders"] for item in order.get("items", []))


@pytest.mark.slow
def test_the_sandbox_matches_the_documented_shapes(served) -> None:
    """Each key, JSON type and enum value the sandbox serves is documented. (It used to serve a `place` in the
    forms listing, which FormLightModel does not have, no /public details, and payments of type "Online".)"""
    assert _all_departures(served) == set()
    assert served["public"]["place"]["city"]


def test_the_departure_finder_sees_a_wrong_type_an_undocumented_key_and_an_undocumented_value() -> None:
    documented = fixture("helloasso", "orders_with_details.json")["data"]
    wrong = [{**documented[0], "id": "21001", "organizationSlug": 7, "extra": 1,
              "items": [{**documented[0]["items"][0], "type": "Ticket", "amount": 25.0}]}]
    assert _departures("order", documented, wrong) == {
        "order.id: ['string'] where the documentation gives ['integer']",
        "order.organizationSlug: ['integer'] where the documentation gives ['string']",
        "order.extra: an undocumented key",
        "order.items.amount: ['number'] where the documentation gives ['integer']",
        "order.items.type: ['Ticket'] is not a documented value",
    }
    assert _departures("order", documented, documented) == set()
