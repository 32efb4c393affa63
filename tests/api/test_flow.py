"""The whole onboarding through the API, from a hand-opened ticket to a closed one (both databases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from onboarding.models import AuditEvent, Ticket
from tests.api.conftest import NEW_TICKET, ApiClient

STEPS = ["contract", "dev_handoff", "validation", "orientation", "billing"]


def test_full_onboarding_to_closed_ticket(session: Session, api: Callable[[str | None], ApiClient]) -> None:
    full_onboarding(session, api)


def full_onboarding(session: Session, api: Callable[[str | None], ApiClient]) -> int:
    """Drive one hand-opened ticket through every endpoint to closed; returns its id."""
    agent, dev, finance = api("agent"), api("developer"), api("finance")

    status, ticket = agent.post("/tickets", NEW_TICKET)
    assert status == 201
    tid = ticket["id"]
    assert ticket["number"] == f"EX-{tid:06d}"
    assert ticket["status"] == "open" and ticket["current_step"] == "contract"
    assert ticket["customer"] == {
        "name": "Drogaria Central Ltda",
        "cnpj": "52601815000120",
        "establishment_codes": ["1234567890"],
    }
    assert ticket["flags"] == [] and ticket["assignee"] is None
    assert [(s["key"], s["status"], s["completed_by"]) for s in ticket["steps"]] == [
        (key, "pending", None) for key in STEPS
    ]

    status, assigned = agent.post(f"/tickets/{tid}/assign", {"user_email": "agent2@test.example"})
    assert status == 200 and assigned["assignee"] == "agent2@test.example"

    for key in ("contract", "dev_handoff"):
        status, ticket = agent.post(f"/tickets/{tid}/steps/{key}/complete", {"notes": f"{key} ok"})
        assert status == 200, ticket
    step = ticket["steps"][0]
    assert step["status"] == "done" and step["completed_by"] == "agent@test.example"
    assert step["notes"] == "contract ok"
    assert datetime.fromisoformat(step["completed_at"]).utcoffset() is not None
    assert "+00:00" in step["completed_at"]
    assert ticket["current_step"] == "validation"

    status, tasks = dev.get("/dev-tasks", ticket_id=tid)
    assert status == 200 and tasks["total"] == 1
    task = tasks["items"][0]
    assert task == {
        "id": task["id"],
        "ticket_id": tid,
        "status": "open",
        "assignee": None,
        "establishment_codes": ["1234567890"],
    }
    status, task = dev.post(f"/dev-tasks/{task['id']}/take")
    assert status == 200 and task["status"] == "taken" and task["assignee"] == "developer@test.example"
    status, task = dev.post(
        f"/dev-tasks/{task['id']}/enable", {"establishment_codes": ["1234567890", "1234567891"]}
    )
    assert status == 200 and task["status"] == "enabled"
    assert task["establishment_codes"] == ["1234567890", "1234567891"]
    status, task = dev.post(f"/dev-tasks/{task['id']}/return")
    assert status == 200 and task["status"] == "returned"
    assert dev.get("/dev-tasks", status="returned")[1]["total"] == 1
    assert dev.get("/dev-tasks", status="open")[1]["total"] == 0

    for key in ("validation", "orientation", "billing"):
        status, ticket = agent.post(f"/tickets/{tid}/steps/{key}/complete", {})
        assert status == 200, ticket
    assert ticket["current_step"] is None
    assert ticket["customer"]["establishment_codes"] == ["1234567890", "1234567891"]

    status, bills = finance.get("/billing-requests", ticket_id=tid)
    assert status == 200 and bills["total"] == 1
    bill = bills["items"][0]
    assert bill == {"id": bill["id"], "ticket_id": tid, "status": "requested", "invoice_ref": None}
    status, bill = finance.post(f"/billing-requests/{bill['id']}/register", {"invoice_ref": "NF-2024-001"})
    assert status == 200
    assert bill == {"id": bill["id"], "ticket_id": tid, "status": "registered", "invoice_ref": "NF-2024-001"}

    status, ticket = agent.post(f"/tickets/{tid}/close")
    assert status == 200 and ticket["status"] == "closed"
    status, fetched = finance.get(f"/tickets/{tid}")
    assert status == 200 and fetched == ticket
    assert all(s["status"] == "done" for s in fetched["steps"])
    assert agent.get("/tickets", status="closed")[1]["total"] == 1
    assert agent.get("/tickets", status="open")[1]["total"] == 0

    session.expire_all()
    closed = session.get(Ticket, tid)
    assert closed is not None and closed.status == "closed"
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.ticket_id == tid).order_by(AuditEvent.id)
    ).all()
    assert actions[0] == "ticket.opened" and actions[-1] == "ticket.closed"
    assert actions.count("step.completed") == 5
    return tid


def test_every_role_reads_tickets_and_lists(session: Session, api: Callable[[str | None], ApiClient]) -> None:
    status, ticket = api("agent").post("/tickets", NEW_TICKET)
    assert status == 201
    for role in ("agent", "developer", "finance", "admin"):
        client = api(role)
        assert client.get("/tickets")[0] == 200
        assert client.get(f"/tickets/{ticket['id']}") == (200, ticket)
        assert client.get("/dev-tasks") == (200, {"items": [], "page": 1, "per_page": 25, "total": 0})
        assert client.get("/billing-requests")[0] == 200


def test_hand_opened_ticket_without_codes_is_flagged(api: Callable[[str | None], ApiClient]) -> None:
    status, ticket = api("admin").post(
        "/tickets",
        {**NEW_TICKET, "establishment_codes": [], "contact_name": "Ana", "contact_phone": "11 5555-0000"},
    )
    assert status == 201
    assert ticket["flags"] == ["incomplete_data", "missing_establishment_code"]
    assert ticket["customer"]["establishment_codes"] == []
