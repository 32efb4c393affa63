"""The whole onboarding in real headless Chromium against the app on PostgreSQL, screen by screen.

Screenshots of the main pages land in artifacts/screenshots/ (web-*.png).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from onboarding import services
from onboarding.models import AuditEvent, BillingRequest, StepStatus, Ticket, TicketStatus
from tests.onboarding.helpers import make_users, open_ticket
from tests.support.browser import LiveServer, screenshot
from tests.web.conftest import db_session, db_snapshot

pytestmark = pytest.mark.browser

CNPJ = "11.222.333/0001-81"
PASSWORD = "password123"


@pytest.fixture
def desk(pg_app: Flask, live_server_factory: Callable[[Any], LiveServer]) -> tuple[Flask, str]:
    """The app on PostgreSQL, served on a free loopback port, with users and three tickets."""
    with db_session(pg_app) as session:
        users = make_users(session)
        open_ticket(session, users["agent"], customer_name="Drogaria Vizinha Ltda")
        open_ticket(
            session,
            users["agent"],
            customer_name="Farmácia São Jorge Ltda",
            cnpj=CNPJ,
            establishment_codes=["1020304050"],
            contact_email="compras@saojorge.example",
        )
        open_ticket(session, users["agent"], customer_name="Drogaria Outra", cnpj="11.444.777/0001-61")
    return pg_app, live_server_factory(pg_app).url


def sign_in(page: Page, url: str, role: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#email", f"{role}@test.example")
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page.locator(".usermenu")).to_contain_text(role)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sair").click()
    expect(page.locator(".flash-info")).to_contain_text("Você saiu do sistema.")


def complete_step(page: Page, key: str, notes: str, label: str) -> None:
    step = page.locator(f'[data-step="{key}"]')
    step.locator("textarea").fill(notes)
    step.get_by_role("button", name="Concluir etapa").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Etapa “{label}” concluída.")
    expect(page.locator(f'[data-step="{key}"] .meta').first).to_contain_text("Concluída por")


def find_by_cnpj(page: Page, query: str) -> None:
    page.get_by_placeholder("Buscar por CNPJ").fill(query)
    page.get_by_placeholder("Buscar por CNPJ").press("Enter")
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Farmácia São Jorge Ltda")
    expect(rows.first).to_contain_text(CNPJ)
    rows.first.locator("a.ticketno").click()
    expect(page.locator("h1")).to_contain_text("Farmácia São Jorge Ltda")


def test_full_onboarding_journey(desk: tuple[Flask, str], page: Page) -> None:
    app, url = desk
    page.goto(url)
    expect(page).to_have_url(f"{url}/login?next=%2F")
    screenshot(page, "web-login")

    # The agent finds the ticket by CNPJ and works the first two steps.
    sign_in(page, url, "agent")
    expect(page.locator("h1")).to_have_text("Fila de chamados")
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    screenshot(page, "web-agent-queue")
    find_by_cnpj(page, CNPJ)
    expect(page.locator('[data-step="contract"] .guidance')).to_contain_text("0800 600 8259")
    screenshot(page, "web-ticket-new")
    complete_step(page, "contract", "Cliente contratou o E-extrato; Boavista confirmou.", "Contratação")
    complete_step(page, "dev_handoff", "CNPJ e EC conferidos.", "Encaminhamento ao desenvolvimento")
    blocked = page.locator('[data-step="validation"] .blocked')
    expect(blocked).to_contain_text("depois que o desenvolvimento devolver a integração")
    sign_out(page)

    # The developer takes, enables and returns the integration.
    sign_in(page, url, "developer")
    expect(page.locator("h1")).to_have_text("Integrações para o desenvolvimento")
    row = page.locator("tr", has_text="Farmácia São Jorge Ltda")
    screenshot(page, "web-dev-queue")
    row.get_by_role("button", name="Assumir").click()
    expect(page.locator(".flash-success")).to_contain_text("Você assumiu a integração")
    row.locator("input[name=establishment_codes]").fill("1020304050, 1020304051")
    row.get_by_role("button", name="Habilitar").click()
    expect(page.locator(".flash-success")).to_contain_text("habilitada para 1020304050, 1020304051")
    row.get_by_role("button", name="Devolver ao atendimento").click()
    expect(page.locator(".flash-success")).to_contain_text("devolvida ao atendimento")
    sign_out(page)

    # The agent validates, orients the customer and asks finance to bill (search without punctuation).
    sign_in(page, url, "agent")
    find_by_cnpj(page, "11222333000181")
    complete_step(page, "validation", "Tudo conciliado, sem divergências.", "Integração e validação")
    complete_step(page, "orientation", "Orientado o gerente, Sr. José.", "Orientação ao cliente")
    complete_step(page, "billing", "Pedido ao financeiro.", "Solicitação de cobrança")
    expect(page.locator("#close-reason")).to_contain_text("depois que o financeiro registrar a cobrança")
    sign_out(page)

    # Finance registers the billing.
    sign_in(page, url, "finance")
    expect(page.locator("h1")).to_have_text("Cobranças de integração")
    row = page.locator("tr", has_text="Farmácia São Jorge Ltda")
    screenshot(page, "web-finance-queue")
    row.locator("input[name=invoice_ref]").fill("NF 2026/0153")
    row.get_by_role("button", name="Registrar").click()
    expect(page.locator(".flash-success")).to_contain_text("registrada (fatura NF 2026/0153)")
    sign_out(page)

    # The agent closes the ticket.
    sign_in(page, url, "agent")
    find_by_cnpj(page, CNPJ)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Encerrar chamado").click()
    expect(page.locator(".flash-success")).to_contain_text("encerrado")
    expect(page.locator(".headstate")).to_contain_text("Encerrado")
    expect(page.locator(".step-done")).to_have_count(5)
    screenshot(page, "web-ticket-closed")
    page.goto(f"{url}/tickets/new")
    screenshot(page, "web-ticket-form")
    page.goto(f"{url}/profile")
    page.fill("#token-label", "planilha")
    page.get_by_role("button", name="Criar token").click()
    expect(page.locator("#new-token")).to_have_value(re.compile(r"^exd_"))
    screenshot(page, "web-profile")

    with db_session(app) as session:
        ticket = session.scalars(select(Ticket).where(Ticket.number == "EX-000002")).one()
        assert ticket.status == TicketStatus.CLOSED and ticket.current_step is None
        assert [s.status for s in ticket.steps] == [StepStatus.DONE] * 5
        assert ticket.steps[3].notes == "Orientado o gerente, Sr. José."
        assert ticket.dev_task is not None and ticket.dev_task.establishment_codes == [
            "1020304050",
            "1020304051",
        ]
        assert ticket.billing_request is not None and ticket.billing_request.invoice_ref == "NF 2026/0153"
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.ticket_id == ticket.id)).all()
        assert actions.count("step.completed") == 5 and "ticket.closed" in actions


def test_developer_is_refused_a_finance_action_and_sees_why(desk: tuple[Flask, str], page: Page) -> None:
    app, url = desk
    with db_session(app) as session:
        users = {u.email.split("@")[0]: u for u in session.scalars(select(services.User))}
        ticket = session.scalars(select(Ticket).where(Ticket.number == "EX-000002")).one()
        for key in ("contract", "dev_handoff"):
            services.complete_step(session, users["agent"], ticket.id, key)
        assert ticket.dev_task is not None
        services.take_dev_task(session, users["developer"], ticket.dev_task.id)
        services.enable_dev_task(session, users["developer"], ticket.dev_task.id, ["1020304050"])
        services.return_dev_task(session, users["developer"], ticket.dev_task.id)
        for key in ("validation", "orientation", "billing"):
            services.complete_step(session, users["agent"], ticket.id, key)
        session.commit()
        request_id = session.scalars(select(BillingRequest.id)).one()

    sign_in(page, url, "developer")
    response = page.goto(f"{url}/billing")
    assert response is not None and response.status == 403
    expect(page.locator(".refused")).to_contain_text(
        "Somente os perfis Administração ou Financeiro podem ver a fila do financeiro; "
        "seu perfil é Desenvolvimento."
    )

    # Even a hand-made form with a valid CSRF token is refused by the server, and nothing changes.
    before = db_snapshot(app)
    with page.expect_navigation() as navigation:
        page.evaluate(
            """([action]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                for (const [name, value] of [
                    ["csrf_token", document.querySelector("meta[name=csrf-token]").content],
                    ["invoice_ref", "NF-FORJADA"],
                ]) {
                    const input = document.createElement("input");
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [f"/billing/{request_id}/register"],
        )
    assert navigation.value is not None and navigation.value.status == 403
    expect(page.locator(".flash-error")).to_have_text(
        "Seu perfil não permite esta ação (registrar cobrança)."
    )
    screenshot(page, "web-refused")
    assert db_snapshot(app) == before
