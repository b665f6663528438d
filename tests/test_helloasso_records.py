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
