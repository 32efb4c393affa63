"""The pages: preview, edit and send a template mail; the reply box; requeue."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mail_ingest.outbound_models import OutboundMail, OutboundStatus
from onboarding.models import User
from tests.mail_outbound.conftest import logged_in_client
from tests.onboarding.helpers import open_ticket
from tests.support.smtp import SmtpServer


def test_agent_previews_edits_and_sends_the_orientation(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"], contact_name="Maria Souza")
    client = logged_in_client(mail_app, users["agent"])

    page = client.get(f"/tickets/{ticket.id}/mail/customer_orientation")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Orientação ao cliente" in html
    assert 'value="contato@drogariateste.example"' in html
    assert "Conciliação automática de cartões ativada — orientações" in html
    assert "srcdoc=" in html and "sandbox" in html

    text = re.search(r'<textarea id="mail-text" name="text" required>(.*?)</textarea>', html, re.S)
    assert text is not None
    edited = (
        text.group(1).replace("&#39;", "'").replace("&amp;", "&").replace("Olá, Maria Souza,", "Olá, Maria,")
    )
    sent = client.post(
        f"/tickets/{ticket.id}/mail/customer_orientation",
        data={
            "to": "contato@drogariateste.example",
            "cc": "",
            "subject": "Orientações E-extrato",
            "text": edited,
        },
    )
    assert sent.status_code == 302
    [received] = smtp_server.messages
    assert str(received.message["Subject"]) == "Orientações E-extrato"
    assert received.message.get_body(("plain",)).get_content().startswith("Olá, Maria,")

    listing = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "E-mail colocado na caixa de saída." in listing
    assert "Orientações E-extrato" in listing and "Enviado" in listing


def test_a_refused_send_keeps_what_the_agent_typed(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"])
    client = logged_in_client(mail_app, users["agent"])
    response = client.post(
        f"/tickets/{ticket.id}/mail/integrator_problem",
        data={
            "to": "suporte@boavista.example",
            "subject": "Divergências",
            "text": "Venda 123: [[preencher: x]]",
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Complete os trechos marcados" in html
    assert "Venda 123: [[preencher: x]]" in html and 'value="suporte@boavista.example"' in html
    assert session.scalars(select(OutboundMail)).all() == []
    assert smtp_server.messages == []


def test_reply_box_sends_and_errors_keep_the_text(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"])
    client = logged_in_client(mail_app, users["agent"])
    bad = client.post(
        f"/tickets/{ticket.id}/mail/reply",
        data={"to": "sem arroba", "subject": "Oi", "text": "Minha resposta"},
    )
    assert bad.status_code == 400
    assert "Endereço de e-mail inválido" in bad.get_data(as_text=True)
    assert "Minha resposta" in bad.get_data(as_text=True)

    good = client.post(
        f"/tickets/{ticket.id}/mail/reply",
        data={"to": "contato@drogariateste.example", "subject": "Re: Oi", "text": "Minha resposta"},
    )
    assert good.status_code == 302
    [received] = smtp_server.messages
    assert received.message.get_body(("plain",)).get_content().strip() == "Minha resposta"


def test_requeue_button_for_uncertain_mail(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    from mail_ingest.outbound import queue_mail

    ticket = open_ticket(session, users["agent"])
    smtp_server.fail_with("550 5.1.1 Mailbox unavailable")
    mail = queue_mail(
        session, ticket_id=ticket.id, to="x@y.example", subject="Oi", text="T", automatic=False, actor=None
    )
    session.commit()
    session.refresh(mail)
    assert mail.status == OutboundStatus.FAILED
    smtp_server.fail_with(None)
    client = logged_in_client(mail_app, users["agent"])
    page = client.get(f"/tickets/{ticket.id}/mail").get_data(as_text=True)
    assert f"/mail/outbound/{mail.id}/requeue" in page and "Falhou" in page
    response = client.post(f"/mail/outbound/{mail.id}/requeue", data={})
    assert response.status_code == 302
    session.refresh(mail)
    assert mail.status == OutboundStatus.SENT and len(smtp_server.messages) == 1


@pytest.mark.parametrize("role", ["developer", "finance"])
def test_only_agents_reach_the_mail_pages(
    mail_app: Flask, session: Session, users: dict[str, User], role: str
) -> None:
    ticket = open_ticket(session, users["agent"])
    client = logged_in_client(mail_app, users[role])
    assert client.get(f"/tickets/{ticket.id}/mail/customer_orientation").status_code == 403
    assert client.post(f"/tickets/{ticket.id}/mail/reply", data={"to": "a@b.example"}).status_code == 403
    assert session.scalars(select(OutboundMail)).all() == []


def test_unknown_template_or_ticket(mail_app: Flask, session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    client = logged_in_client(mail_app, users["agent"])
    assert client.get(f"/tickets/{ticket.id}/mail/no_such_template").status_code == 404
    assert client.get("/tickets/999999/mail/customer_orientation").status_code == 404


def test_anonymous_is_refused(mail_app: Flask, session: Session, users: dict[str, User]) -> None:
    # (Flask-Login caches the user in `g`, which these tests share across requests: so this one
    # makes no logged-in request.)
    ticket = open_ticket(session, users["agent"])
    logged_in_client(mail_app, users["agent"])  # installs the login manager when the app has none
    anonymous = mail_app.test_client()
    page = anonymous.get(f"/tickets/{ticket.id}/mail/customer_orientation")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    refused = anonymous.post(f"/tickets/{ticket.id}/mail/reply", data={"to": "a@b.example"})
    assert refused.status_code in (302, 400)  # sent to the login page, or refused for lacking CSRF
