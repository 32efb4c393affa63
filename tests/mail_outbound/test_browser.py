"""In Chromium: at step 4 the agent opens the orientation template from the ticket page, edits it,
sends it, and sees it in the conversation and in the ticket's timeline."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from onboarding.models import StepKey, User
from tests.mail_outbound.conftest import session_cookie
from tests.onboarding.helpers import advance_to, open_ticket
from tests.support.browser import screenshot
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.browser


def test_agent_sends_the_orientation_from_step_4(
    mail_app: Flask,
    session: Session,
    smtp_server: SmtpServer,
    users: dict[str, User],
    page: Any,
    live_server_factory: Any,
) -> None:
    ticket = open_ticket(session, users["agent"], contact_name="Maria Souza")
    advance_to(session, users, ticket, 3)
    assert ticket.current_step == StepKey.ORIENTATION
    live = live_server_factory(mail_app)
    page.context.add_cookies(
        [{"name": "session", "value": session_cookie(mail_app, users["agent"]), "url": live.url}]
    )

    page.goto(f"{live.url}/tickets/{ticket.id}")
    page.get_by_role("link", name="Orientação ao cliente (etapa atual)").click()

    assert page.get_by_label("Para").input_value() == "contato@drogariateste.example"
    assert page.get_by_label("Assunto").input_value() == (
        f"[{ticket.number}] Conciliação automática de cartões ativada — orientações"
    )
    preview = page.frame_locator("iframe.preview")
    assert "mesma tela de conciliação / Recebimento de Cartões" in preview.locator("body").inner_text()
    text = page.get_by_label("Mensagem")
    text.fill(text.input_value().replace("Em caso de dúvida", "Qualquer dúvida"))
    page.get_by_role("button", name="Enviar e-mail").click()

    page.get_by_role("status").filter(has_text="E-mail colocado na caixa de saída.").wait_for()
    sent = page.locator("article.mail-out")
    assert sent.count() == 1
    assert "Conciliação automática de cartões ativada" in sent.inner_text()
    assert "Enviado" in sent.inner_text()

    page.goto(f"{live.url}/tickets/{ticket.id}")
    timeline = page.locator(".timeline")
    assert "E-mail enviado (Enviado): " in timeline.inner_text()
    assert "Conciliação automática de cartões ativada" in timeline.inner_text()
    screenshot(page, "mail-orientation-in-timeline")
    [received] = smtp_server.messages
    assert received.rcpt_tos == ("contato@drogariateste.example",)
    assert "Qualquer dúvida" in received.message.get_body(("plain",)).get_content()
