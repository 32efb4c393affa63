"""Mail queued from a ticket reaches a real SMTP server with the right headers and parts."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mail_ingest import tokens
from mail_ingest.outbound import outbound_timeline, queue_mail, send_due
from mail_ingest.outbound_models import OutboundMail, OutboundStatus
from mail_ingest.ticket_mail import preview, send_from_ticket, send_reply
from onboarding import services
from onboarding.errors import InvalidInput, PermissionDenied, WorkflowError
from onboarding.models import AuditEvent, User
from tests.mail_outbound.conftest import TEST_SECRET, point_at
from tests.onboarding.helpers import advance_to, open_ticket, snapshot
from tests.support.smtp import SmtpServer

ORIENTATION_SUBJECT = "[EX-000001] Conciliação automática de cartões ativada — orientações"


def header_lines(raw: bytes) -> dict[str, str]:
    """The raw (still encoded) header section, unfolded, by lower-case name."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    result: dict[str, str] = {}
    for line in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        name, _, value = line.partition(":")
        result[name.lower()] = value.strip()
    return result


def parts(message: EmailMessage) -> dict[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return {"text": plain.get_content(), "html": html.get_content()}


def test_orientation_mail_arrives_with_headers_and_both_parts(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"], contact_name="Maria Souza")
    draft = preview(ticket.id, "customer_orientation", session=session, actor=users["agent"])
    assert draft.to == ["contato@drogariateste.example"]
    assert draft.subject == ORIENTATION_SUBJECT

    mail = send_from_ticket(
        session, users["agent"], ticket.id, "customer_orientation", draft.to, draft.subject, draft.text
    )
    assert smtp_server.messages == []  # nothing leaves before the commit
    session.commit()

    [received] = smtp_server.messages
    message = received.message
    assert received.mail_from == "suporte@vetorsolucoes.com.br"
    assert received.rcpt_tos == ("contato@drogariateste.example",)
    assert message["From"].addresses[0].addr_spec == "suporte@vetorsolucoes.com.br"
    assert message["From"].addresses[0].display_name == "Suporte Financeiro Vetor"
    assert message["To"] == "contato@drogariateste.example"
    assert message["Reply-To"] == "atendimento@vetorsolucoes.com.br"
    assert str(message["Subject"]) == ORIENTATION_SUBJECT
    raw_headers = header_lines(received.raw)  # ASCII only: RFC 2047 encoded words
    assert "=?utf-8?" in raw_headers["subject"].lower()
    assert "Concilia" in raw_headers["subject"] and "ção" not in raw_headers["subject"]
    assert tokens.ticket_id_from_message_id(message["Message-ID"], TEST_SECRET) == ticket.id
    assert message["Message-ID"] == mail.message_id
    assert message["Auto-Submitted"] is None
    assert message["In-Reply-To"] is None
    body = parts(message)
    assert "mesma tela de conciliação / Recebimento de Cartões" in body["text"]
    assert "Não é mais necessário importar nenhum arquivo manualmente" in body["text"]
    assert "últimos 3 dias" in body["text"] and "conciliada em até 3 dias" in body["text"]
    assert "Olá, Maria Souza," in body["text"]
    assert "<strong>últimos 3 dias</strong>" in body["html"]

    session.refresh(mail)
    assert (mail.status, mail.attempts, mail.last_error) == (OutboundStatus.SENT, 1, "")
    assert mail.sent_at is not None and mail.smtp_reply.startswith("250")
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.ticket_id == ticket.id)).all()
    assert {"mail.queued", "mail.sent_from_ticket", "mail.sent"} <= set(actions)


def test_reply_is_threaded_under_the_mail_it_answers(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"])
    draft = preview(ticket.id, "customer_orientation", session=session)
    first = send_from_ticket(
        session, users["agent"], ticket.id, draft.template, draft.to, draft.subject, draft.text
    )
    session.commit()
    reply = send_reply(
        session,
        users["agent"],
        ticket.id,
        to="Maria <contato@drogariateste.example>",
        cc="gerente@drogariateste.example, contato@drogariateste.example",
        subject="Re: " + draft.subject,
        text="Olá, Maria!\n\nComplementando: a primeira conciliação sai amanhã.\n\nAbraços",
        in_reply_to=first.message_id,
    )
    session.commit()

    first_received, reply_received = smtp_server.messages
    message = reply_received.message
    assert message["In-Reply-To"] == first.message_id
    assert message["References"] == first.message_id
    assert tokens.ticket_id_from_message_id(message["Message-ID"], TEST_SECRET) == ticket.id
    assert message["Message-ID"] != first_received.message["Message-ID"]
    assert sorted(reply_received.rcpt_tos) == [
        "contato@drogariateste.example",
        "gerente@drogariateste.example",
    ]
    assert message["Cc"] == "gerente@drogariateste.example"
    body = parts(message)
    assert "a primeira conciliação sai amanhã" in body["text"]
    assert "<p>Olá, Maria!</p>" in body["html"]
    session.refresh(reply)
    assert reply.status == OutboundStatus.SENT


def test_edited_text_gets_its_own_html_and_is_kept_as_written(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"])
    draft = preview(ticket.id, "customer_orientation", session=session)
    text = draft.text.replace("Em caso de dúvida", "Qualquer dúvida <script>x</script>")
    send_from_ticket(session, users["agent"], ticket.id, draft.template, draft.to, "Orientações", text)
    session.commit()
    body = parts(smtp_server.messages[0].message)
    assert "Qualquer dúvida <script>x</script>" in body["text"]
    assert "Qualquer dúvida &lt;script&gt;x&lt;/script&gt;" in body["html"]
    assert "<script>" not in body["html"]


def test_refused_sends_change_nothing(mail_app: Flask, session: Session, users: dict[str, User]) -> None:
    ticket = open_ticket(session, users["agent"])
    draft = preview(ticket.id, "integrator_problem", session=session)
    before = snapshot(session)

    with pytest.raises(InvalidInput) as placeholder:  # the agent must describe the divergences
        send_from_ticket(
            session,
            users["agent"],
            ticket.id,
            draft.template,
            ["x@boavista.example"],
            draft.subject,
            draft.text,
        )
    assert placeholder.value.code == "mail_has_placeholders"
    session.rollback()
    with pytest.raises(PermissionDenied):
        send_from_ticket(
            session, users["developer"], ticket.id, "customer_orientation", "a@b.example", "Oi", "Texto"
        )
    session.rollback()
    with pytest.raises(InvalidInput) as bad_address:
        send_reply(session, users["agent"], ticket.id, to="sem-arroba", subject="Oi", text="Texto")
    assert bad_address.value.code == "invalid_address"
    session.rollback()
    with pytest.raises(InvalidInput):
        send_reply(
            session, users["agent"], ticket.id, to="a@b.example\r\nBcc: x@y.example", subject="Oi", text="T"
        )
    session.rollback()
    assert snapshot(session) == before


def test_closed_ticket_refuses_mail(mail_app: Flask, session: Session, users: dict[str, User]) -> None:
    mail_app.config.update(FINANCE_ADDRESS=None, DEV_TEAM_ADDRESS=None)
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 5)
    assert ticket.billing_request is not None
    services.register_billing(session, users["finance"], ticket.billing_request.id, "NF-1")
    services.close_ticket(session, users["agent"], ticket.id)
    session.commit()
    before = snapshot(session)
    with pytest.raises(WorkflowError) as refused:
        send_from_ticket(
            session, users["agent"], ticket.id, "customer_orientation", "a@b.example", "Oi", "Texto"
        )
    assert refused.value.code == "ticket_closed"
    session.rollback()
    with pytest.raises(WorkflowError):
        send_reply(session, users["agent"], ticket.id, to="a@b.example", subject="Oi", text="Texto")
    session.rollback()
    assert snapshot(session) == before


def test_without_smtp_host_the_outbox_is_kept(app: Flask, session: Session, users: dict[str, User]) -> None:
    point_at(app, None)
    ticket = open_ticket(session, users["agent"])
    mail = queue_mail(
        session,
        ticket_id=ticket.id,
        to="a@b.example",
        subject="Teste",
        text="Olá",
        automatic=False,
        actor=None,
    )
    session.commit()
    summary = send_due(ignore_backoff=True)
    assert (summary["smtp"], summary["queued"], summary["due"], summary["sent"]) == (
        "not_configured",
        1,
        1,
        0,
    )
    session.refresh(mail)
    assert (mail.status, mail.attempts) == (OutboundStatus.QUEUED, 0)


def test_timeline_lists_outgoing_mail_with_safe_html(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    ticket = open_ticket(session, users["agent"])
    queue_mail(
        session,
        ticket_id=ticket.id,
        to="a@b.example",
        subject="Primeiro",
        text="Texto 1",
        html='<p onclick="x()">Olá<script>alert(1)</script><img src=x onerror=alert(1)></p>',
        automatic=False,
        actor=users["agent"],
    )
    session.commit()
    smtp_server.stop()
    queue_mail(
        session,
        ticket_id=ticket.id,
        to="c@d.example",
        subject="Segundo",
        text="Texto 2",
        automatic=True,
        actor=None,
    )
    session.commit()

    first, second = outbound_timeline(session, ticket.id)
    assert (first["subject"], first["status"], first["direction"]) == ("Primeiro", "sent", "out")
    assert first["to"] == ["a@b.example"] and first["from"].endswith("<suporte@vetorsolucoes.com.br>")
    assert str(first["html_safe"]) == "<p>Olá</p>"
    assert (second["subject"], second["status"], second["automatic"]) == ("Segundo", "queued", True)
    assert second["html_safe"] is None and "cannot reach" in second["error"]
    assert first["when"] <= second["when"]
    assert session.scalars(select(OutboundMail)).all()[0].ticket_id == ticket.id
