"""The reconciliation endpoints of /api/v1: roles, per-item errors, corrections, summary, items."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import time_machine
from flask import Flask

from onboarding import auth, db
from onboarding.models import AuditEvent
from reconciliation.models import Correction, StoredReceipt
from tests.onboarding.helpers import make_users, snapshot
from tests.reconciliation_db.helpers import RETORNO_COLUMNS, retorno, sale, write_csv
from tests.reconciliation_db.test_corrections import at


def tokens(app: Flask) -> dict[str, str]:
    with app.app_context():
        session = db.session()
        users = make_users(session)
        issued = {name: auth.issue_token(session, user) for name, user in users.items()}
        session.commit()
        return issued


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def json_sale(sale_id: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = dict(sale(sale_id))
    item["amount"] = 100.0
    item["installments"] = 1
    item.update(overrides)
    return item


def test_post_sales_keeps_good_items_and_reports_the_bad(app: Flask, client: Any) -> None:
    token = tokens(app)["developer"]
    body = [
        json_sale("1"),
        json_sale("2", amount="1.234,56", sale_datetime="10/03/2025 08:00:00"),
        json_sale("3", amount="abc"),
        "not an object",
        json_sale("1", amount=5),  # already in this batch: ignored
        json_sale("4", amount=10.005),
    ]
    response = client.post("/api/v1/sales", json=body, headers=bearer(token))
    assert response.status_code == 200, response.json
    data = response.json
    assert (data["received"], data["inserted"], data["ignored"]) == (6, 2, 1)
    assert [(e["index"], e["sale_id"]) for e in data["errors"]] == [(2, "3"), (3, None), (5, "4")]
    assert all(e["message"] for e in data["errors"])
    with app.app_context():
        stored = {r.sale_id: r for r in db.session().scalars(sa.select(StoredReceipt))}
        assert sorted(stored) == ["1", "2"]
        assert (stored["1"].amount_cents, stored["2"].amount_cents) == (10000, 123456)
    # The same batch again adds nothing.
    again = client.post("/api/v1/sales", json={"sales": body[:2]}, headers=bearer(token))
    assert (again.status_code, again.json["inserted"], again.json["ignored"]) == (200, 0, 2)


def test_post_sales_refusals_change_nothing(app: Flask, client: Any) -> None:
    issued = tokens(app)
    with app.app_context():
        before = snapshot(db.session())
    cases = [
        ({}, issued["developer"], 400),
        ([], issued["developer"], 400),
        ([json_sale("9", amount="x"), json_sale("10", payment_type="boleto")], issued["admin"], 400),
        ([json_sale("11")], issued["agent"], 403),
        ([json_sale("12")], issued["finance"], 403),
        ([json_sale("13")], "exd_wrong", 401),
    ]
    for body, token, status in cases:
        response = client.post("/api/v1/sales", json=body, headers=bearer(token))
        assert response.status_code == status, (body, response.json)
        assert set(response.json) >= {"error", "message"}
    assert client.post("/api/v1/sales", json=[json_sale("14")]).status_code == 401
    with app.app_context():
        assert snapshot(db.session()) == before


def test_patch_sale_is_a_correction(app: Flask, client: Any) -> None:
    issued = tokens(app)
    client.post("/api/v1/sales", json=[json_sale("20")], headers=bearer(issued["admin"]))
    client.post("/api/v1/sales", json=[json_sale("NF/22")], headers=bearer(issued["admin"]))
    slashed = client.patch("/api/v1/sales/NF/22", json={"nsu": "1"}, headers=bearer(issued["agent"]))
    assert slashed.status_code == 200 and slashed.json["sale_id"] == "NF/22"
    with app.app_context():
        before = snapshot(db.session())
    for role in ("developer", "finance"):
        refused = client.patch("/api/v1/sales/20", json={"nsu": "1"}, headers=bearer(issued[role]))
        assert refused.status_code == 403
    assert (
        client.patch("/api/v1/sales/21", json={"nsu": "1"}, headers=bearer(issued["agent"])).status_code
        == 404
    )
    bad = client.patch("/api/v1/sales/20", json={"installments": 0}, headers=bearer(issued["agent"]))
    assert bad.status_code == 400 and bad.json["error"] == "invalid_correction"
    unknown = client.patch("/api/v1/sales/20", json={"acquirer": "rede"}, headers=bearer(issued["agent"]))
    assert unknown.status_code == 400
    with app.app_context():
        assert snapshot(db.session()) == before

    with time_machine.travel(at(date(2025, 3, 12)), tick=False):
        response = client.patch(
            "/api/v1/sales/20",
            json={"authorization_code": "xyz9", "installments": 2, "amount": "150,00", "brand": "Master"},
            headers=bearer(issued["agent"]),
        )
    assert response.status_code == 200, response.json
    data = response.json
    assert (data["authorization_code"], data["installments"], data["amount_cents"]) == ("XYZ9", 2, 15000)
    assert data["brand"] == "master" and data["corrected_on"] == "2025-03-12"
    assert data["correction"]["before"] == {
        "amount": 10000,
        "authorization_code": "A20",
        "brand": "visa",
        "installments": 1,
    }
    with app.app_context():
        session = db.session()
        correction = session.scalars(sa.select(Correction).where(Correction.sale_id == "20")).one()
        assert correction.source == "api" and correction.corrected_on == date(2025, 3, 12)
        event = session.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "recon.sale_corrected")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).one()
        assert event.after is not None and event.after["installments"] == 2
        assert event.actor_id == correction.user_id and event.actor is not None
        assert event.actor.role == "agent"


def test_summary_and_items_for_every_role(app: Flask, client: Any, runner: Any, tmp_path: Path) -> None:
    issued = tokens(app)
    client.post(
        "/api/v1/sales",
        json=[
            json_sale("30"),
            json_sale("31", amount=50),
            json_sale("32"),
            json_sale("33", establishment_code="2030405060"),
        ],
        headers=bearer(issued["developer"]),
    )
    rows = write_csv(
        tmp_path / "retorno.csv",
        RETORNO_COLUMNS,
        [retorno("R30", "30"), retorno("R31", "31", sale_amount="40.00", gross_amount="40.00")],
    )
    assert runner.invoke(args=["recon", "import-retorno", str(rows)]).exit_code == 0

    for role in ("agent", "developer", "finance", "admin"):
        response = client.get(
            "/api/v1/reconciliation/summary?as_of=2025-03-11&establishment=1020304050",
            headers=bearer(issued[role]),
        )
        assert response.status_code == 200, response.json
    summary = response.json
    assert summary["as_of"] == "2025-03-11" and summary["establishment"] == "1020304050"
    assert summary["sales"]["matched"] == 1 and summary["sales"]["divergent"] == 1
    assert summary["sales"]["pending"] == 1 and summary["receipts"] == 3
    assert summary["divergences"]["amount"] == 2  # the receipt and its retorno row
    assert summary["sale_divergences"]["amount"] == 1

    everything = client.get("/api/v1/reconciliation/summary", headers=bearer(issued["finance"])).json
    assert everything["as_of"] == "2025-03-11" and everything["receipts"] == 4

    page = client.get(
        "/api/v1/reconciliation/items?establishment=1020304050&page=1&per_page=2",
        headers=bearer(issued["agent"]),
    ).json
    assert (page["page"], page["per_page"], page["total"]) == (1, 2, 5)
    assert [(i["kind"], i["id"]) for i in page["items"]] == [("sale", "30"), ("sale", "31")]
    second = client.get(
        "/api/v1/reconciliation/items?establishment=1020304050&page=3&per_page=2",
        headers=bearer(issued["agent"]),
    ).json
    assert [(i["kind"], i["id"]) for i in second["items"]] == [("statement", "R31")]
    divergent = client.get(
        "/api/v1/reconciliation/items?status=divergent", headers=bearer(issued["finance"])
    ).json
    assert divergent["total"] == 2
    assert divergent["items"][0] == {
        "kind": "sale",
        "id": "31",
        "status": "divergent",
        "divergences": ["amount"],
        "counterpart_ids": ["R31"],
        "rule": divergent["items"][0]["rule"],
        "establishment_code": "1020304050",
    }
    for query in ("status=wrong", "page=0", "per_page=100000", "as_of=11/03/2025"):
        bad = client.get(f"/api/v1/reconciliation/items?{query}", headers=bearer(issued["agent"]))
        assert bad.status_code == 400 and "message" in bad.json
    assert client.get("/api/v1/reconciliation/items").status_code == 401
