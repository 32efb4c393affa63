"""GET /tickets: the `q` search, the filters and paging (both databases)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from onboarding import services
from onboarding.models import Ticket, User
from tests.api.conftest import ApiClient
from tests.onboarding.helpers import advance_to, open_ticket


@pytest.fixture
def two_tickets(session: Session, users: dict[str, User]) -> tuple[int, int]:
    first = open_ticket(
        session,
        users["agent"],
        customer_name="Drogaria Central Ltda",
        cnpj="52601815000120",
        establishment_codes=["1234567890"],
    )
    second = open_ticket(
        session,
        users["agent"],
        customer_name="Farmácia Boa Saúde",
        cnpj="11.222.333/0001-81",
        establishment_codes=["7777000011"],
    )
    return first.id, second.id


def ids(answer: dict) -> list[int]:
    return [item["id"] for item in answer["items"]]


@pytest.mark.parametrize(
    ("q", "which"),
    [
        ("52601815000120", 0),  # CNPJ digits
        ("52.601.815/0001-20", 0),  # CNPJ formatted
        ("52.601.815", 0),  # a CNPJ prefix, punctuated
        ("11222333000181", 1),
        ("11.222.333/0001-81", 1),
        ("1234567890", 0),  # establishment code
        ("7777000011", 1),
        ("central", 0),  # name, any case
        ("BOA Saúde", 1),  # non-ASCII case folding on SQLite is the query layer's (see report)
    ],
)
def test_q_search(
    api: Callable[[str | None], ApiClient], two_tickets: tuple[int, int], q: str, which: int
) -> None:
    status, answer = api("developer").get("/tickets", q=q)
    assert status == 200
    assert ids(answer) == [two_tickets[which]]
    assert answer["total"] == 1


def test_q_search_by_number(api: Callable[[str | None], ApiClient], two_tickets: tuple[int, int]) -> None:
    second = two_tickets[1]
    for q in (f"EX-{second:06d}", f"ex-{second:06d}", f"#EX-{second:06d}"):
        assert ids(api("agent").get("/tickets", q=q)[1]) == [second], q
    assert api("agent").get("/tickets", q="nada que exista")[1] == {
        "items": [],
        "page": 1,
        "per_page": 25,
        "total": 0,
    }


def test_filters_status_step_assignee(
    session: Session,
    users: dict[str, User],
    api: Callable[[str | None], ApiClient],
    two_tickets: tuple[int, int],
) -> None:
    first, second = two_tickets
    ticket = session.get(Ticket, first)
    assert ticket is not None
    advance_to(session, users, ticket, 2)
    services.assign_ticket(session, users["agent"], second, "agent2@test.example")
    session.commit()
    agent = api("agent")
    assert ids(agent.get("/tickets", step="validation")[1]) == [first]
    assert ids(agent.get("/tickets", step="contract")[1]) == [second]
    assert ids(agent.get("/tickets", assignee="agent2@test.example")[1]) == [second]
    assert ids(agent.get("/tickets", assignee="AGENT2@test.example")[1]) == [second]
    assert ids(agent.get("/tickets", assignee="ninguem@test.example")[1]) == []
    assert ids(agent.get("/tickets", status="open")[1]) == [first, second]
    assert ids(agent.get("/tickets", status="", step="", q="")[1]) == [first, second]  # blank = no filter
    summary = agent.get("/tickets", q="7777000011")[1]["items"][0]
    assert summary["assignee"] == "agent2@test.example"
    assert summary["customer"]["cnpj"] == "11222333000181"
    assert set(summary) == {
        "id",
        "number",
        "subject",
        "status",
        "current_step",
        "customer",
        "flags",
        "assignee",
        "created_at",
    }


def test_paging(session: Session, users: dict[str, User], api: Callable[[str | None], ApiClient]) -> None:
    opened = [
        open_ticket(session, users["agent"], customer_name=f"Drogaria {n}", establishment_codes=[f"EC{n}"]).id
        for n in range(5)
    ]
    agent = api("finance")
    pages = [agent.get("/tickets", page=n, per_page=2)[1] for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [(p["page"], p["per_page"]) for p in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]
    assert [ids(p) for p in pages] == [opened[0:2], opened[2:4], opened[4:5], []]
    whole = agent.get("/tickets", per_page=100)[1]
    assert ids(whole) == opened and whole["per_page"] == 100
    assert ids(agent.get("/tickets", q="Drogaria", per_page=3, page=2)[1]) == opened[3:5]


def test_dev_task_and_billing_lists_filter_and_page(
    session: Session, users: dict[str, User], api: Callable[[str | None], ApiClient]
) -> None:
    tickets = [
        open_ticket(session, users["agent"], customer_name=f"Drogaria {n}", establishment_codes=[f"EC{n}"])
        for n in range(3)
    ]
    for ticket in tickets:
        advance_to(session, users, ticket, 5)
    client = api("developer")
    page = client.get("/dev-tasks", per_page=2, page=2)[1]
    assert page["total"] == 3 and [t["ticket_id"] for t in page["items"]] == [tickets[2].id]
    assert [t["ticket_id"] for t in client.get("/dev-tasks", ticket_id=tickets[1].id)[1]["items"]] == [
        tickets[1].id
    ]
    bills = client.get("/billing-requests", status="requested", per_page=2)[1]
    assert bills["total"] == 3 and len(bills["items"]) == 2
    assert client.get("/billing-requests", status="registered")[1]["total"] == 0
    assert [b["ticket_id"] for b in client.get("/billing-requests", ticket_id=tickets[0].id)[1]["items"]] == [
        tickets[0].id
    ]
