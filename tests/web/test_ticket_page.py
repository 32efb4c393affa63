"""The ticket page: checklist with guidance, who did what, blockers, assignment, closing, extension hooks."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import Markup
from sqlalchemy import select

from onboarding import services, web_hooks
from onboarding.models import Ticket
from onboarding.views import TicketPanel, TimelineEntry
from tests.onboarding.helpers import VALID_CNPJ, advance_to, open_ticket
from tests.web.conftest import db_session, db_snapshot, load_users
from tests.web.helpers import login_as, post_form, text


def step_block(page: str, key: str) -> str:
    """The HTML of one step of the checklist."""
    start = page.index(f'data-step="{key}"')
    following = [i for i in (page.find('data-step="', start + 1), page.find("</ol>", start)) if i > 0]
    return page[start : min(following)]


@pytest.fixture
def ticket_id(app: Flask, users: dict[str, int]) -> int:
    with db_session(app) as session:
        return open_ticket(session, load_users(session)["agent"]).id


def test_checklist_shows_guidance_and_records_who_did_what(
    app: Flask, client: FlaskClient, ticket_id: int
) -> None:
    login_as(client, "agent")
    page = text(client.get(f"/tickets/{ticket_id}"))
    for label in services.STEP_LABELS.values():
        assert label in page
    assert "0800 600 8259" in page and "formulário de contato" in page  # step 1 guidance
    assert "os últimos 3 dias" in page  # step 4 guidance, from RECON_LOOKBACK_DAYS
    assert "nenhum arquivo é importado à mão" in page
    assert "Administrativo/Financeiro" in page
    assert "52.601.815/0001-20" in page

    response = post_form(
        client, f"/tickets/{ticket_id}/steps/contract/complete", {"notes": "Contrato confirmado por João"}
    )
    assert response.status_code == 303 and response.headers["Location"] == f"/tickets/{ticket_id}"
    page = text(client.get(response.headers["Location"]))
    assert "Etapa “Contratação” concluída." in page  # flashed
    done = step_block(page, "contract")
    assert done and "Concluída por <strong>agent</strong>" in done
    assert "Contrato confirmado por João" in done
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", done)
    assert "Histórico" in page and "Etapa “Contratação” concluída" in page


def test_blocked_step_explains_why(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with db_session(app) as session:
        agent = session.get(services.User, users["agent"])
        assert agent is not None
        ticket = open_ticket(session, agent)
        all_users = {
            u.name if u.name != "" else u.email: u for u in session.scalars(services.select(services.User))
        }
        advance_to(session, {**all_users, "agent2": all_users["agent2@test.example"]}, ticket, 2)
        ticket_id = ticket.id
    login_as(client, "agent")
    page = text(client.get(f"/tickets/{ticket_id}"))
    current = step_block(page, "validation")
    assert current and "Esta etapa ainda não pode ser concluída" in current
    assert "depois que o desenvolvimento devolver a integração" in current
    assert "Concluir etapa" not in current
    assert "Aguardando" in page  # dev task status in the side panel
    assert "Conclua a etapa “Integração e validação” antes de encerrar." in page


def test_assign_to_an_agent(app: Flask, client: FlaskClient, ticket_id: int) -> None:
    login_as(client, "agent")
    response = post_form(client, f"/tickets/{ticket_id}/assign", {"user_email": "agent2@test.example"})
    assert response.status_code == 303
    assert "Chamado atribuído a agent2@test.example." in text(client.get(f"/tickets/{ticket_id}"))
    before = db_snapshot(app)
    refused = post_form(client, f"/tickets/{ticket_id}/assign", {"user_email": "developer@test.example"})
    assert refused.status_code == 400 and "só podem ser atribuídos a agentes" in text(refused)
    assert db_snapshot(app) == before


def test_close_after_billing_registered(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    with db_session(app) as session:
        by_role = load_users(session)
        ticket = open_ticket(session, by_role["agent"])
        advance_to(session, by_role, ticket, 5)
        assert ticket.billing_request is not None
        services.register_billing(session, by_role["finance"], ticket.billing_request.id, "NF-77")
        session.commit()
        ticket_id = ticket.id
    login_as(client, "agent")
    page = text(client.get(f"/tickets/{ticket_id}"))
    close_form = f'action="/tickets/{ticket_id}/close"'
    assert close_form in page and "NF-77" in page
    assert post_form(client, f"/tickets/{ticket_id}/close").status_code == 303
    page = text(client.get(f"/tickets/{ticket_id}"))
    assert "Encerrado em" in page and close_form not in page and "Chamado encerrado" in page
    assert "Concluir etapa" not in page


def test_unknown_ticket_and_step(client: FlaskClient, ticket_id: int) -> None:
    login_as(client, "agent")
    assert client.get("/tickets/999999").status_code == 404
    response = post_form(client, f"/tickets/{ticket_id}/steps/nonsense/complete")
    assert response.status_code == 404 and "Etapa desconhecida: nonsense." in text(response)


def test_open_ticket_by_hand(app: Flask, client: FlaskClient, users: dict[str, int]) -> None:
    login_as(client, "agent")
    assert "Novo chamado" in text(client.get("/tickets/new"))
    before = db_snapshot(app)
    bad = post_form(
        client,
        "/tickets/new",
        {"customer_name": "Farmácia X", "cnpj": "11.111.111/1111-11", "contact_email": "x"},
    )
    assert bad.status_code == 400
    assert "CNPJ inválido" in text(bad) and "Informe um e-mail válido" in text(bad)
    assert 'value="Farmácia X"' in text(bad)  # what was typed is kept
    assert db_snapshot(app) == before

    good = post_form(
        client,
        "/tickets/new",
        {
            "customer_name": "Farmácia Nova Era",
            "cnpj": "52.601.815/0001-20",
            "establishment_codes": "1020304050\n1020304051, 1020304050",
            "contact_email": "compras@novaera.example",
        },
    )
    assert good.status_code == 303
    with db_session(app) as session:
        ticket = session.scalars(select(Ticket)).one()
        assert good.headers["Location"] == f"/tickets/{ticket.id}"
        assert ticket.customer.cnpj == VALID_CNPJ
        assert ticket.customer.establishment_codes == ["1020304050", "1020304051"]
        assert ticket.customer.contact_email == "compras@novaera.example"
        assert ticket.flags == []
    assert f"Chamado {ticket.number} aberto." in text(client.get(good.headers["Location"]))


def test_extension_hooks_add_timeline_entries_and_panels(
    client: FlaskClient, ticket_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_hooks, "_timeline_sources", [])
    monkeypatch.setattr(web_hooks, "_panel_sources", [])
    when = datetime(2020, 1, 2, 15, 4, tzinfo=UTC)

    def mail_source(_db: object, ticket: Ticket) -> list[object]:
        return [
            TimelineEntry(when, "mail", {"title": f"E-mail recebido <{ticket.number}>", "actor": "Boavista"}),
            (when, "mail", Markup("<p class='probe-html'>corpo <em>sanitizado</em></p>")),
            (when.replace(tzinfo=None), "note", "<script>nope</script>"),  # naive: taken as UTC
        ]

    def panel(_db: object, ticket: Ticket, user: object) -> TicketPanel | None:
        return TicketPanel("Conciliação", Markup(f"<p class='probe-panel'>{ticket.number}</p>"))

    web_hooks.register_timeline_source(mail_source)
    web_hooks.register_timeline_source(mail_source)  # registering twice has no effect
    web_hooks.register_ticket_panel(panel)
    login_as(client, "agent")
    page = text(client.get(f"/tickets/{ticket_id}"))
    assert page.count("E-mail recebido &lt;EX-") == 1  # escaped, once
    assert "<p class='probe-html'>corpo <em>sanitizado</em></p>" in page
    assert "&lt;script&gt;nope&lt;/script&gt;" in page and "<script>nope" not in page
    assert "02/01/2020 12:04" in page  # business time zone
    assert page.index("02/01/2020 12:04") < page.index("Chamado aberto")  # merged by time, oldest first
    assert "<h2>Conciliação</h2>" in page and "probe-panel" in page


def test_nav_registry_links_only_for_the_role(client: FlaskClient, users: dict[str, int]) -> None:
    login_as(client, "finance")
    page = text(client.get("/"))
    assert 'href="/billing"' in page and 'href="/dev-tasks"' not in page and 'href="/tickets/new"' not in page
