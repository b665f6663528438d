"""HelloAsso flatteners: the item email, item options and typed fields (issue 13, findings 3, 4 and 6)."""

from __future__ import annotations

import copy

from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_orders, flatten_helloasso_payments


def _order(**changes) -> dict:
    order = {
        "id": 42, "date": "2025-03-08T10:15:00+01:00", "formSlug": "gala-2025", "formType": "Event",
        "payer": {"email": "payeur@example.org", "firstName": "Hugo", "lastName": "Dubois"},
        "amount": {"total": 4500, "vat": 0, "discount": 0},
        "items": [{
            "id": 420, "amount": 3000, "type": "Registration", "state": "Processed", "name": "Billet",
            "user": {"firstName": "Léa", "lastName": "Roux"},
            "customFields": [
                {"id": 1, "name": "J'accepte d'être contacté(e) par e-mail", "type": "YesNo", "answer": "Oui"},
                {"id": 2, "name": "Promo", "type": "TextInput", "answer": "2010"},
            ],
            "options": [{"name": "Dîner", "amount": 1500, "priceCategory": "Fixed", "isRequired": False,
                         "optionId": 77, "customFields": []}],
        }],
    }
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = order
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[int(leaf) if isinstance(target, list) else leaf] = value
    return order


def test_a_consent_question_answered_oui_is_not_the_item_email() -> None:
    """Finding 3: the label "… par e-mail" is no email field; the answer "Oui" is no email."""
    orders, items, _bad = flatten_helloasso_orders([_order()])
    assert len(orders) == 1 and len(items) == 1
    assert items[0]["email"] is None


def test_an_exact_email_label_gives_the_email_and_a_non_email_answer_is_a_field_quarantine() -> None:
    good = _order()
    good["items"][0]["customFields"].append({"id": 3, "name": "Email", "type": "TextInput", "answer": " lea@example.org "})
    bad = _order(id=43)
    bad["items"][0]["id"] = 430
    bad["items"][0]["customFields"].append({"id": 3, "name": "Email", "type": "TextInput", "answer": "Oui"})
    orders, items, quarantined = flatten_helloasso_orders([good, bad])
    assert [i["email"] for i in items] == ["lea@example.org", None]
    assert len(orders) == 2  # the item with a bad email still loads
    field = [q for q in quarantined if q["scope"] == "field"]
    assert [(q["source"], q["record_key"], q["reason"]) for q in field] == [("helloasso.items", "430", "invalid_email:Email")]


def test_item_options_are_kept_so_an_order_adds_up() -> None:
    """Finding 4: an option's amount is money of the order; the items alone are 1500 short of the total."""
    from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_order_details

    rows = flatten_helloasso_order_details([_order()])
    assert [(o["item_id"], o["order_id"], o["name"], o["amount_cents"], o["option_id"]) for o in rows.options] == \
        [(420, 42, "Dîner", 1500, 77)]
    total = rows.orders[0]["total_cents"]
    assert total == sum(i["amount_cents"] for i in rows.items) + sum(o["amount_cents"] for o in rows.options)


def test_unusable_values_quarantine_one_order_and_the_rest_loads() -> None:
    """Finding 6: a decimal string amount, a non-numeric id or a float total fail one record, never the batch,
    and a float total is not truncated."""
    records = [
        _order(),
        _order(**{"id": 51, "items.0.amount": "20.00"}),
        _order(id="A-52"),
        _order(**{"id": 53, "amount.total": 4500.75}),
        _order(**{"id": 54, "items.0.id": "x-1"}),
        _order(**{"id": 55, "items.0.options.0.amount": "15.00"}),
    ]
    orders, items, quarantined = flatten_helloasso_orders(copy.deepcopy(records))
    assert [o["order_id"] for o in orders] == [42]
    rows = [q for q in quarantined if q["scope"] == "row"]
    assert [(q["record_key"], q["reason"]) for q in rows] == [
        ("51", "invalid_field_type:items.amount"), ("A-52", "invalid_field_type:id"),
        ("53", "invalid_field_type:amount.total"), ("54", "invalid_field_type:items.id"),
        ("55", "invalid_field_type:items.options.amount"),
    ]
    assert len(records) == len(orders) + len(rows)


def test_a_payment_with_a_decimal_amount_or_a_text_id_is_quarantined_alone() -> None:
    good = {"id": 9, "date": "2025-03-08T10:15:00+01:00", "amount": 4500, "state": "Authorized", "type": "Credit",
            "paymentMeans": "Card", "order": {"id": 42}}
    records = [good, {**good, "id": 10, "amount": "45.00"}, {**good, "id": "ten"}, {**good, "id": 11, "order": {"id": "x"}},
               {**good, "id": 12, "amount": 4500.5}]
    rows, bad = flatten_helloasso_payments(records)
    assert [r["payment_id"] for r in rows] == [9]
    assert [(b["record_key"], b["reason"]) for b in bad] == [
        ("10", "invalid_field_type:amount"), ("ten", "invalid_field_type:id"),
        ("11", "invalid_field_type:order.id"), ("12", "invalid_field_type:amount"),
    ]


# --- The documented shapes (tests/fixtures/providers/helloasso, see SOURCES.md) ---------------------------------

def _documented(name: str) -> list:
    from tests.fixture_server import fixture

    return fixture("helloasso", name)["data"]


def test_documented_orders_flatten_to_typed_rows_with_options_and_money_conserved() -> None:
    import datetime as dt

    from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_order_details

    rows = flatten_helloasso_order_details(_documented("orders_with_details.json"))
    assert [(o["order_id"], o["partition_date"], o["form_type"], o["total_cents"]) for o in rows.orders] == [
        (21001, dt.date(2025, 3, 8), "Event", 11000), (21004, dt.date(2025, 3, 9), "Membership", 5000),
        (21005, dt.date(2025, 3, 9), "Membership", 5000), (20499, dt.date(2025, 3, 10), "Donation", 2000)]
    assert rows.orders[0]["order_at"] == dt.datetime(2025, 3, 8, 9, 15, 2, 744211)
    assert [(i["item_id"], i["item_type"], i["amount_cents"], i["email"], i["promo"]) for i in rows.items] == [
        (21001, "Registration", 2500, "lea.roux@example.org", "2010"), (21002, "Registration", 2500, None, None),
        (21003, "Donation", 1000, None, None), (21004, "Membership", 5000, None, None),
        (21005, "Membership", 5000, "sam.petit@example.org", None), (20499, "Donation", 2000, None, None)]
    assert [(o["item_id"], o["option_index"], o["option_id"], o["name"], o["amount_cents"], o["price_category"],
             o["is_required"]) for o in rows.options] == [
        (21001, 0, 301, "Dîner de gala", 3500, "Fixed", False), (21002, 0, 302, "T-shirt", 1500, "Fixed", False)]
    for order in rows.orders:
        parts = [i["amount_cents"] for i in rows.items if i["order_id"] == order["order_id"]]
        parts += [o["amount_cents"] for o in rows.options if o["order_id"] == order["order_id"]]
        assert order["total_cents"] == sum(parts)
    assert [(b["source"], b["record_key"], b["reason"], b["scope"]) for b in rows.bad] == [
        ("helloasso.items", "21004", "invalid_email:Email", "field")]


def test_a_configured_exact_label_is_the_email_field_and_nothing_near_it() -> None:
    order = _order()
    order["items"][0]["customFields"].append({"id": 5, "name": "Adresse électronique", "type": "TextInput",
                                              "answer": "lea@example.org"})
    _, items, _ = flatten_helloasso_orders([copy.deepcopy(order)])
    assert items[0]["email"] is None
    _, items, _ = flatten_helloasso_orders([copy.deepcopy(order)], email_labels=("adresse ÉLECTRONIQUE",))
    assert items[0]["email"] == "lea@example.org"
    _, items, _ = flatten_helloasso_orders([copy.deepcopy(order)], email_labels=("Adresse",))
    assert items[0]["email"] is None


def test_documented_payments_and_forms_flatten_to_typed_rows() -> None:
    import datetime as dt

    from alumni_orchestration.ingest.helloasso.records import flatten_helloasso_forms

    payments, bad = flatten_helloasso_payments(_documented("payments.json"))
    assert bad == []
    assert [(p["payment_id"], p["order_id"], p["amount_cents"], p["payment_type"], p["payment_means"],
             p["partition_date"]) for p in payments] == [
        (13801, 21001, 11000, None, "Card", dt.date(2025, 3, 8)), (13802, 21004, 5000, None, "Card", dt.date(2025, 3, 9)),
        (13803, 21005, 5000, "Offline", "Check", dt.date(2025, 3, 9))]
    forms, bad = flatten_helloasso_forms(_documented("forms.json"))
    assert bad == []
    assert [(f["form_slug"], f["form_type"], f["topic"], f["city"]) for f in forms] == [
        ("gala-2025", "Event", "gala", None), ("adhesion-2025", "Membership", None, None)]
    assert forms[0]["start_at"] == dt.datetime(2025, 4, 12, 17, 0)
