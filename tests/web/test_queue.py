"""The agents' queue: search by CNPJ with or without punctuation, code, name, number; filters; paging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from onboarding import services, web_queue
from onboarding.db import utcnow
from onboarding.models import Ticket, User
from tests.onboarding.helpers import VALID_CNPJ, advance_to, make_users, open_ticket
from tests.web.conftest import db_session
from tests.web.helpers import login_as, text

NUMBERS = re.compile(r'class="ticketno">(EX-\d{6})<')
OTHER_CNPJ = "11222333000181"


def numbers(client: FlaskClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    return NUMBERS.findall(text(response))


@pytest.fixture
def tickets(app: Flask) -> dict[str, str]:
    """Three open tickets of different ages (oldest first) and one closed; name -> number."""
    with db_session(app) as session:
        users = make_users(session)
        first = open_ticket(session, users["agent"], customer_name="Drogaria São João Ltda")
        second = open_ticket(
            session,
            users["agent"],
            customer_name="Farmácia Boa Saúde",
            cnpj=OTHER_CNPJ,
            establishment_codes=["7788990011"],
        )
        services.assign_ticket(session, users["agent"], second.id, "agent2@test.example")
        third = open_ticket(session, users["agent"], customer_name="Drogaria Central", cnpj="11444777000161")
        closed = open_ticket(session, users["agent"], customer_name="Farmácia Antiga", cnpj="11444777000161")
        advance_to(session, users, closed, 5)
        assert closed.billing_request is not None
        services.register_billing(session, users["finance"], closed.billing_request.id, "NF-1")
        services.close_ticket(session, users["agent"], closed.id)
        # Ages: the first ticket is the oldest, whatever order the ids have.
        now = utcnow()
        for ticket, days in ((first, 5), (second, 3), (third, 1), (closed, 9)):
            session.get(Ticket, ticket.id).created_at = now - timedelta(days=days)  # type: ignore[union-attr]
        session.commit()
        return {
            "first": first.number,
            "second": second.number,
            "third": third.number,
            "closed": closed.number,
        }


def test_queue_lists_open_tickets_oldest_first_with_formatted_fields(
    client: FlaskClient, tickets: dict[str, str]
) -> None:
    login_as(client, "agent")
    assert numbers(client, "/") == [tickets["first"], tickets["second"], tickets["third"]]
    page = text(client.get("/tickets"))
    assert "52.601.815/0001-20" in page  # CNPJ formatted
    assert "7788990011" in page  # establishment code
    assert "Contratação" in page  # current step, pt-BR label
    assert "5 dias" in page  # age
    assert "Drogaria São João Ltda" in page  # accents intact


@pytest.mark.parametrize(
    "query",
    [
        "11.222.333/0001-81",
        "11222333000181",
        "11.222.333",
        "7788990011",
        "boa saúde",
        "BOA SA",
        "farmacia boa saude",  # typed without accents
        "FARMÁCIA BOA SAÚDE",  # capitals beyond ASCII
    ],
)
def test_search_finds_by_cnpj_code_or_name(client: FlaskClient, tickets: dict[str, str], query: str) -> None:
    login_as(client, "agent")
    assert numbers(client, f"/tickets?q={query}") == [tickets["second"]]


def test_search_follows_renamed_customers_and_trade_names(
    app: Flask, client: FlaskClient, tickets: dict[str, str]
) -> None:
    with db_session(app) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == tickets["third"])).one()
        ticket.customer.name = "Drogaria Ipê Amarelo"
        ticket.customer.trade_name = "Ipê Matriz"
        session.commit()
    login_as(client, "agent")
    assert numbers(client, "/tickets?q=ipe amarelo") == [tickets["third"]]
    assert numbers(client, "/tickets?q=IPÊ MATRIZ") == [tickets["third"]]
    assert numbers(client, "/tickets?q=drogaria central") == []
    assert numbers(client, "/tickets?q=amarelo ipe") == []  # never across the two names


def test_search_by_ticket_number_and_in_closed_tickets(client: FlaskClient, tickets: dict[str, str]) -> None:
    login_as(client, "agent")
    number = tickets["third"]
    assert numbers(client, f"/tickets?q={number}") == [number]
    assert numbers(client, f"/tickets?q={number.lower()}") == [number]
    assert numbers(client, "/tickets?q=11444777000161") == [number]
    assert numbers(client, "/tickets?q=11444777000161&status=all") == [tickets["closed"], number]
    assert numbers(client, "/tickets?status=closed") == [tickets["closed"]]
    empty = text(client.get("/tickets?q=00000000000000"))
    assert "Nenhum chamado encontrado" in empty


def test_filters_by_step_and_assignee(app: Flask, client: FlaskClient, tickets: dict[str, str]) -> None:
    login_as(client, "agent2")
    assert numbers(client, "/tickets?assignee=me") == [tickets["second"]]
    with db_session(app) as session:
        agent2_id = session.scalars(select(User.id).where(User.email == "agent2@test.example")).one()
    assert numbers(client, f"/tickets?assignee={agent2_id}") == [tickets["second"]]
    assert numbers(client, "/tickets?step=contract") == [
        tickets["first"],
        tickets["second"],
        tickets["third"],
    ]
    assert numbers(client, "/tickets?step=billing") == []
    assert numbers(client, "/tickets?status=closed&step=contract") == []
    # Unknown filter values fall back to the defaults instead of failing.
    assert numbers(client, "/tickets?status=bogus&step=bogus&page=x") == [
        tickets["first"],
        tickets["second"],
        tickets["third"],
    ]


def test_queue_is_paged(app: Flask, client: FlaskClient) -> None:
    with db_session(app) as session:
        users = make_users(session)
        for i in range(30):
            services.open_ticket(session, users["agent"], customer_name=f"Farmácia {i:02d}", cnpj=VALID_CNPJ)
        session.commit()
    login_as(client, "agent")
    first = numbers(client, "/tickets?per_page=25")
    second_page = client.get("/tickets?per_page=25&page=2")
    second = NUMBERS.findall(text(second_page))
    assert len(first) == 25 and len(second) == 5 and not set(first) & set(second)
    assert "Página 2 de 2" in text(second_page) and "30 chamados" in text(second_page)
    assert 'href="/tickets?per_page=25&amp;page=1"' in text(second_page)


def test_newest_first_and_literal_wildcards(client: FlaskClient, tickets: dict[str, str]) -> None:
    login_as(client, "agent")
    assert numbers(client, "/tickets?sort=newest") == [tickets["third"], tickets["second"], tickets["first"]]
    assert numbers(client, "/tickets?q=%25") == []  # a typed % is a percent sign, not "anything"
    assert numbers(client, "/tickets?q=_") == []


def test_count_stops_at_the_limit(
    client: FlaskClient, tickets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_queue, "COUNT_LIMIT", 2)
    login_as(client, "agent")
    first = client.get("/tickets?per_page=2")
    assert "mais de 2 chamados" in text(first) and "<span>Página 1</span>" in text(first)
    assert 'rel="next"' in text(first)  # there may be more: the next page stays reachable
    last = client.get("/tickets?per_page=2&page=2")
    assert NUMBERS.findall(text(last)) == [tickets["third"]]
    assert "3 chamados" in text(last) and "Página 2 de 2" in text(last)  # the last page knows the total


def test_a_row_shows_every_code_of_its_customer_once_and_the_assignee(
    app: Flask, client: FlaskClient
) -> None:
    with db_session(app) as session:
        users = make_users(session)
        customers = ((VALID_CNPJ, ["300", "100", "200"]), (OTHER_CNPJ, []), ("11444777000161", ["400"]))
        for cnpj, codes in customers:
            ticket = open_ticket(session, users["agent"], cnpj=cnpj, establishment_codes=codes)
        services.assign_ticket(session, users["agent"], ticket.id, "agent2@test.example")  # no name: e-mail
        session.commit()
    login_as(client, "agent")
    page = text(client.get("/tickets?per_page=2"))
    rows = re.findall(r"<tr[ >].*?</tr>", page, re.DOTALL)[1:]  # without the header row
    assert len(rows) == 2 and "3 chamados" in page
    assert re.findall(r'<code class="ec">(\d+)</code>', rows[0]) == ["300", "100", "200"]  # as added
    assert '<code class="ec">' not in rows[1] and "—" in rows[1]
    last = text(client.get("/tickets?per_page=2&page=2"))
    assert re.findall(r'<code class="ec">(\d+)</code>', last) == ["400"]
    assert "agent2@test.example" in last
