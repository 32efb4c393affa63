"""In headless Chromium: the agent validates step 3 from the chart and the divergences, then corrects
a receipt on the correction screen and sees it queued for the next remessa."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from onboarding import db
from onboarding.models import StepKey, User
from reconciliation import clock, lifecycle, synth
from reconciliation.models import StoredReceipt
from reconciliation.simulator import IntegratorSimulator
from tests.lifecycle.helpers import (
    CODE,
    SP,
    enable_and_return,
    import_receipts,
    integration_of,
    ticket_at_validation,
)
from tests.onboarding.helpers import make_users
from tests.support.browser import LiveServer, screenshot


def test_agent_validates_step_3_and_corrects_an_authorization_code(
    pg_app: Flask, page: Page, live_server_factory: Callable[[Any], LiveServer], tmp_path: Path
) -> None:
    app = pg_app
    today = clock.today(SP)  # real time: the browser's cookies live on the real clock
    data = synth.generate(
        18, seed=4, start_date=today - timedelta(days=3), days=4, establishments=[CODE]
    ).receipts
    card = [r for r in data if r.nsu and r.authorization_code]
    auth_sale, nsu_sale = card[0], card[1]
    with app.app_context():
        session = db.session()
        users = make_users(session)
        ticket_id = ticket_at_validation(session, users).id
        developer_id = users["developer"].id
    import_receipts(app, data, tmp_path)
    enable_and_return(app, developer_id, ticket_id)
    IntegratorSimulator(
        app.config["RECON_EXCHANGE_DIR"],
        seed=1,
        tz=SP,
        fault_rate=0,
        unidentified_rate=0,
        lost_rate=0,
        extra_sale_rate=0,
        overrides={auth_sale.sale_id: synth.AUTHORIZATION_CODE, nsu_sale.sale_id: synth.NSU},
    ).run_once()
    with app.app_context():
        lifecycle.sync_integration(integration_of(app, ticket_id).id)

    server = live_server_factory(app)
    page.goto(f"{server.url}/login")
    page.get_by_label("E-mail").fill("agent@test.example")
    page.get_by_label("Senha").fill("password123")
    page.get_by_role("button", name="Entrar").click()

    # Step 3 from the ticket page.
    page.goto(f"{server.url}/tickets/{ticket_id}")
    page.get_by_role("link", name="Validação da conciliação").click()
    expect(page.get_by_role("heading", name=re.compile("Integração e validação"))).to_be_visible()

    # The chart: four days, two divergent sales in all, each day described in its title.
    chart = page.locator("svg.recon-chart")
    expect(chart).to_be_visible()
    days = chart.locator("g.chart-day")
    expect(days).to_have_count(4)
    divergent = sum(int(days.nth(i).get_attribute("data-divergent") or 0) for i in range(4))
    reconciled = sum(int(days.nth(i).get_attribute("data-reconciled") or 0) for i in range(4))
    assert (divergent, reconciled) == (2, len(data) - 2)
    assert f"{today:%d/%m/%Y}:" in (days.nth(3).locator("title").text_content() or "")
    expect(page.locator("#step3-blocker")).to_contain_text("faltam 2 divergências")
    screenshot(page, "lifecycle-validation-before-triage")

    # Triage every divergence: the authorization code is the customer's, the NSU the integrator's.
    for sale, who in ((auth_sale, "Cliente (operação)"), (nsu_sale, "Boavista (integradora)")):
        card_box = page.locator("article.divergence", has_text=f"Venda {sale.sale_id}")
        card_box.get_by_label(who).check()
        card_box.get_by_role("button", name="Definir responsável").click()
        expect(page.locator(".flash-success")).to_contain_text("Divergência atribuída")
    expect(page.locator("article.divergence.untriaged")).to_have_count(0)
    expect(page.locator("#triage-progress")).to_contain_text("2 de 2")
    expect(page.get_by_role("link", name="Escrever ao cliente (problema de operação)")).to_be_visible()

    page.get_by_label("Observações").fill("Autorização digitada errada na loja; NSU com a Boavista.")
    page.get_by_role("button", name="Concluir validação").click()
    expect(page.locator(f"#step-{StepKey.VALIDATION.value}")).to_contain_text("Concluída")

    # The correction screen: the authorization code as the acquirer has it, queued for the remessa.
    page.goto(f"{server.url}/reconciliation/tickets/{ticket_id}/receipts?status=divergent")
    row = page.locator(f'tr[data-sale="{auth_sale.sale_id}"]')
    expect(row).to_contain_text("Divergente")
    row.get_by_role("link", name="Corrigir").click()
    acquirer_code = page.locator(".sidecompare tbody tr").first.locator("td").nth(6).inner_text().strip()
    assert acquirer_code and acquirer_code != auth_sale.authorization_code
    page.get_by_label("Nº de autorização").fill(acquirer_code)
    page.get_by_role("button", name="Salvar correção").click()
    expect(page.locator(".flash-success")).to_contain_text(
        f"Correção da venda {auth_sale.sale_id} registrada"
    )
    expect(page.locator("#correction-state")).to_contain_text("Na fila da remessa")
    expect(page.locator("#receipt-status")).to_contain_text("Conciliada")  # reconciled again at once
    expect(page.locator("#history")).to_contain_text(acquirer_code)
    screenshot(page, "lifecycle-correction-queued")
    page.get_by_role("link", name="Recebimento de cartões").first.click()
    page.get_by_label("Situação").select_option("queued")
    page.get_by_role("button", name="Filtrar").click()
    expect(page.locator("tr[data-sale]")).to_have_count(1)
    expect(page.locator(f'tr[data-sale="{auth_sale.sale_id}"] td.correction')).to_contain_text(
        "Na fila da remessa"
    )

    with app.app_context():
        stored = (
            db.session()
            .scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == auth_sale.sale_id))
            .one()
        )
        assert stored.authorization_code == acquirer_code and stored.resend_pending
        agent = db.session().scalars(sa.select(User).where(User.email == "agent@test.example")).one()
        assert agent.role == "agent"
