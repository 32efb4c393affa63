"""The validation, correction and configuration screens through HTTP: content, roles, CSRF, refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from onboarding import db
from reconciliation import lifecycle, synth
from reconciliation.integration_models import DivergenceTriage, Integration
from reconciliation.models import Correction, StoredReceipt
from reconciliation.simulator import IntegratorSimulator
from tests.lifecycle.helpers import (
    CODE,
    SP,
    at,
    enable_and_return,
    import_receipts,
    integration_of,
    triage_rows,
)
from tests.onboarding.helpers import snapshot
from tests.web.helpers import csrf_token, login_as, post_form, text

DAY = date(2025, 3, 10)


@pytest.fixture
def clock() -> Iterator[Any]:
    """The whole test on the simulated clock (a session signed at one time is refused at another)."""
    with time_machine.travel(at(DAY, 11), tick=False) as traveller:
        yield traveller


@pytest.fixture
def scenario(app: Flask, users: dict[str, int], ticket_id: int, tmp_path: Path, clock: Any) -> dict[str, Any]:
    """An integration after its validation run: one authorization code and one NSU divergent."""
    data = synth.generate(
        16, seed=8, start_date=DAY - timedelta(days=2), days=3, establishments=[CODE]
    ).receipts
    import_receipts(app, data, tmp_path)
    card = [r for r in data if r.nsu and r.authorization_code]
    auth_sale, nsu_sale = card[0], card[1]
    clock.move_to(at(DAY, 9))
    enable_and_return(app, users["developer"], ticket_id)
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
    clock.move_to(at(DAY, 11))
    return {"auth_sale": auth_sale, "nsu_sale": nsu_sale, "receipts": data}


def plain(html: str) -> str:
    """The page's words, without tags, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, text(response)[:500]
    return text(response)


def test_pages_need_a_signed_in_user(client: FlaskClient, ticket_id: int) -> None:
    response = client.get(f"/reconciliation/tickets/{ticket_id}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_before_the_integration_exists_the_page_says_so(client: FlaskClient, ticket_id: int) -> None:
    login_as(client, "agent")
    body = page(client, f"/reconciliation/tickets/{ticket_id}")
    assert "ainda não foi configurada nem devolvida" in body


def test_validation_page_shows_days_chart_and_divergences(
    app: Flask, client: FlaskClient, ticket_id: int, scenario: dict[str, Any]
) -> None:
    with time_machine.travel(at(DAY, 11), tick=False):
        login_as(client, "agent")  # inside the travel: a session signed in the future is refused
        body = page(client, f"/reconciliation/tickets/{ticket_id}")
    total = len(scenario["receipts"])
    # The chart: one group per day of the window, its numbers in data attributes and a title.
    groups = re.findall(
        r'<g class="chart-day" data-day="([\d-]+)" data-reconciled="(\d+)" data-divergent="(\d+)"', body
    )
    assert [g[0] for g in groups] == [(DAY - timedelta(days=k)).isoformat() for k in (3, 2, 1, 0)]
    assert sum(int(g[1]) for g in groups) == total - 2 and sum(int(g[2]) for g in groups) == 2
    assert "<svg" in body and "Conciliadas e divergentes por dia" in body
    # Per establishment and day.
    rows = re.findall(r'<tr data-establishment="(\d+)" data-day="([\d-]+)">', body)
    assert rows and all(code == CODE for code, _ in rows)
    # Both divergences, with both sides of the differing field, waiting for triage.
    assert body.count('class="divergence untriaged"') == 2
    assert scenario["auth_sale"].sale_id in body and scenario["nsu_sale"].sale_id in body
    assert scenario["auth_sale"].authorization_code in body
    assert "0 de 2 divergências da primeira conciliação" in plain(body)
    assert "Defina quem deve agir" in body  # step 3 blocked, with the reason
    # Filter by kind.
    only_nsu = page(client, f"/reconciliation/tickets/{ticket_id}?kind=nsu")
    assert only_nsu.count('class="divergence untriaged"') == 1
    assert f"Venda {scenario['nsu_sale'].sale_id}" in only_nsu
    assert f"Venda {scenario['auth_sale'].sale_id}" not in only_nsu


def test_triage_posts_check_csrf_and_roles_then_offer_the_mail(
    app: Flask, client: FlaskClient, ticket_id: int, scenario: dict[str, Any]
) -> None:
    rows = triage_rows(app, ticket_id)
    target = rows[0]
    url = f"/reconciliation/divergences/{target.id}/triage"
    login_as(client, "developer")
    with app.app_context():
        before = snapshot(db.session())
    no_token = client.post(url, data={"responsible": "customer"})
    assert no_token.status_code == 400
    refused = post_form(client, url, {"responsible": "customer"})
    assert refused.status_code == 403 and "não permite" in text(refused)
    with app.app_context():
        assert snapshot(db.session()) == before

    client.post("/logout", data={"csrf_token": csrf_token(client, "/profile")})
    login_as(client, "agent")
    bad = post_form(client, url, {"responsible": "ninguém"})
    assert bad.status_code == 400 and "Escolha quem deve agir" in text(bad)
    done = post_form(client, url, {"responsible": "customer", "note": "cliente digitou errado"})
    assert done.status_code == 303
    body = page(client, done.headers["Location"])
    assert "Divergência atribuída: Cliente (operação)." in body
    assert f"/tickets/{ticket_id}/mail/customer_operation_problem" in body
    with app.app_context():
        row = db.session().get(DivergenceTriage, target.id)
        assert row is not None and row.responsible == "customer" and row.note == "cliente digitou errado"
    # The ticket's timeline tells it in pt-BR.
    assert "Divergência atribuída: Cliente (operação)" in page(client, f"/tickets/{ticket_id}")
    # The offered mail lists that divergence.
    compose = page(client, f"/tickets/{ticket_id}/mail/customer_operation_problem")
    assert f"Venda {target.record_key}" in compose

    # The other one, then step 3 completes from the validation page.
    other = post_form(
        client, f"/reconciliation/divergences/{rows[1].id}/triage", {"responsible": "integrator"}
    )
    assert other.status_code == 303
    body = page(client, f"/reconciliation/tickets/{ticket_id}")
    assert "2 de 2 divergências" in plain(body) and "Concluir validação" in body
    complete = post_form(client, f"/tickets/{ticket_id}/steps/validation/complete", {"notes": "validado"})
    assert complete.status_code == 303


def test_correction_screen_lists_corrects_and_shows_the_queue(
    app: Flask, client: FlaskClient, ticket_id: int, scenario: dict[str, Any]
) -> None:
    sale = scenario["auth_sale"]
    with time_machine.travel(at(DAY + timedelta(days=1), 7), tick=False) as later:
        with app.app_context():  # the scheduled pass sends the day's remessa at 06:00+
            lifecycle.sync_integration(integration_of(app, ticket_id).id, trigger="schedule")
        later.move_to(at(DAY + timedelta(days=1), 10))
        login_as(client, "agent")
        listing = page(client, f"/reconciliation/tickets/{ticket_id}/receipts?status=divergent")
        assert listing.count("<tr data-sale=") == 2
        assert f'<tr data-sale="{sale.sale_id}" data-status="divergent">' in listing
        url = f"/reconciliation/tickets/{ticket_id}/receipts/{sale.sale_id}"
        form = page(client, url)
        assert 'name="authorization_code"' in form and "No retorno da Boavista" in form

        with app.app_context():
            before = snapshot(db.session())
        invalid = post_form(client, url, {**_form(sale), "installments": "0"})
        assert invalid.status_code == 400 and "Correção inválida" in text(invalid)
        unchanged = post_form(client, url, _form(sale))
        assert unchanged.status_code == 400 and "Nada foi alterado" in text(unchanged)
        with app.app_context():
            assert snapshot(db.session()) == before

        saved = post_form(client, url, {**_form(sale), "authorization_code": "zz9999"})
        assert saved.status_code == 303
        body = page(client, saved.headers["Location"])
        assert "Correção da venda" in body and "próxima remessa" in body
        assert "Na fila da remessa" in body
        assert "11/03/2025" in body  # corrected today; the next remessa: 12/03/2025 06:00
        assert "12/03/2025 06:00" in body
        assert "vira manual em 15/03/2025" in plain(body)
        queued = page(client, f"/reconciliation/tickets/{ticket_id}/receipts?status=queued")
        assert queued.count("<tr data-sale=") == 1 and "reenvio em 12/03/2025 06:00" in queued
    with app.app_context():
        stored = (
            db.session().scalars(sa.select(StoredReceipt).where(StoredReceipt.sale_id == sale.sale_id)).one()
        )
        assert stored.authorization_code == "ZZ9999" and stored.resend_pending
        correction = db.session().scalars(sa.select(Correction)).one()
        assert correction.source == "web" and correction.after == {"authorization_code": "ZZ9999"}


def test_only_agents_correct_and_only_the_integrations_receipts(
    app: Flask, client: FlaskClient, ticket_id: int, scenario: dict[str, Any]
) -> None:
    sale = scenario["auth_sale"]
    url = f"/reconciliation/tickets/{ticket_id}/receipts/{sale.sale_id}"
    login_as(client, "finance")
    with app.app_context():
        before = snapshot(db.session())
    refused = post_form(client, url, {**_form(sale), "authorization_code": "AAA111"})
    assert refused.status_code == 403
    with app.app_context():
        assert snapshot(db.session()) == before
    assert 'name="authorization_code" value="' in page(client, url)  # may look, read-only
    page(client, f"/reconciliation/tickets/{ticket_id}/receipts/nao-existe", 404)
    page(client, "/reconciliation/tickets/99999", 404)


def test_developer_configures_the_integration_agents_cannot(
    app: Flask, client: FlaskClient, ticket_id: int, users: dict[str, int]
) -> None:
    url = f"/reconciliation/tickets/{ticket_id}/integration"
    with app.app_context():
        from onboarding import services

        session = db.session()
        from onboarding.models import User

        task = services.get_ticket(session, ticket_id).dev_task
        assert task is not None
        services.take_dev_task(session, session.get(User, users["developer"]), task.id)
        session.commit()
    login_as(client, "agent")
    refused = post_form(client, url, {"transport": "folder", "establishment_codes": CODE})
    assert refused.status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/profile")})

    login_as(client, "developer")
    assert "Pasta de troca" in page(client, url)
    secret = post_form(
        client,
        url,
        {
            "transport": "sftp",
            "establishment_codes": CODE,
            "host": "h",
            "username": "u",
            "host_key": "ssh-ed25519 AAAA",
        },
    )
    assert secret.status_code == 400 and "informe a chave privada" in text(secret)
    ok = post_form(
        client,
        url,
        {
            "transport": "sftp",
            "establishment_codes": f"{CODE}, 2030405060",
            "host": "sftp.boavista.example",
            "username": "vetor",
            "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            "password_env": "BOAVISTA_SFTP_PASSWORD",
            "remessa_time": "05:30",
        },
    )
    assert ok.status_code == 303
    with app.app_context():
        integration = db.session().scalars(sa.select(Integration)).one()
        assert integration.transport == "sftp" and integration.remessa_time == "05:30"
        assert integration.establishment_codes == [CODE, "2030405060"]


def test_ticket_page_links_the_screens_and_failures_are_visible(
    app: Flask, client: FlaskClient, ticket_id: int, users: dict[str, int], tmp_path: Path
) -> None:
    (tmp_path / "blocker").write_text("")
    app.config["RECON_EXCHANGE_DIR"] = str(tmp_path / "blocker" / "troca")
    with time_machine.travel(at(DAY, 9), tick=False):
        enable_and_return(app, users["developer"], ticket_id)
    with time_machine.travel(at(DAY, 9, 1), tick=False):
        login_as(client, "agent")
        ticket_page = page(client, f"/tickets/{ticket_id}")
        assert f'href="/reconciliation/tickets/{ticket_id}"' in ticket_page and "Conciliação" in ticket_page
        body = page(client, f"/reconciliation/tickets/{ticket_id}")
        assert "A última sincronização falhou" in body and "pasta de troca inacessível" in body
        assert "Nova tentativa automática em 10/03/2025 09:05" in body
        assert "Falhou" in body  # the pass in the list
        synced = post_form(client, f"/reconciliation/tickets/{ticket_id}/sync")
    assert synced.status_code == 303  # queued; in-process it ran (and failed again) after the commit
    with app.app_context():
        integration = db.session().scalars(sa.select(Integration)).one()
        assert integration.consecutive_failures == 2


def _form(sale: Any) -> dict[str, str]:
    from reconciliation import csvformat

    return {
        "authorization_code": sale.authorization_code or "",
        "nsu": sale.nsu or "",
        "installments": str(sale.installments),
        "brand": sale.brand,
        "payment_type": sale.payment_type.value,
        "amount": csvformat.format_amount(sale.amount_cents, csvformat.SEMICOLON),
    }
