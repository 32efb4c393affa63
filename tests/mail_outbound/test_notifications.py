"""Automatic mail: step notifications in the step's transaction, the loop guard, the daily cap."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mail_ingest import tokens
from mail_ingest.outbound import queue_mail, requeue
from mail_ingest.outbound_models import OutboundMail, OutboundStatus
from onboarding import services
from onboarding.db import utcnow
from onboarding.models import StepKey, User
from tests.mail_outbound.conftest import DEV_TEAM, FINANCE, TEST_SECRET
from tests.mail_outbound.test_sending import parts
from tests.onboarding.helpers import advance_to, open_ticket
from tests.support.smtp import SmtpServer


def outbox_count(session: Session) -> int:
    return int(session.scalar(select(func.count(OutboundMail.id))) or 0)


def test_completing_dev_handoff_mails_the_developers(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    mail_app.config.update(DEV_TEAM_ADDRESS=DEV_TEAM, FINANCE_ADDRESS=FINANCE)
    ticket = open_ticket(
        session,
        users["agent"],
        cnpj="52.601.815/0001-20",
        establishment_codes=["1234567890", "998877"],
        contact_name="Maria Souza",
        contact_phone="(11) 3333-4444",
    )
    advance_to(session, users, ticket, 1)
    services.complete_step(session, users["agent"], ticket.id, StepKey.DEV_HANDOFF, notes="Duas lojas.")
    assert smtp_server.messages == []
    session.commit()

    [received] = smtp_server.messages
    message = received.message
    assert received.rcpt_tos == (DEV_TEAM,)
    assert message["Auto-Submitted"] == "auto-generated"
    assert tokens.ticket_id_from_message_id(message["Message-ID"], TEST_SECRET) == ticket.id
    assert str(message["Subject"]) == "[EX-000001] Habilitar integração E-extrato — Drogaria Teste Ltda"
    text = parts(message)["text"]
    for expected in (
        "CNPJ: 52.601.815/0001-20",
        "Códigos de estabelecimento: 1234567890, 998877",
        "Contato: Maria Souza <contato@drogariateste.example> · (11) 3333-4444",
        f"https://desk.example/tickets/{ticket.id}",
        "Duas lojas.",
    ):
        assert expected in text
    assert f'href="https://desk.example/tickets/{ticket.id}"' in parts(message)["html"]


def test_completing_billing_mails_finance(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    mail_app.config.update(DEV_TEAM_ADDRESS=None, FINANCE_ADDRESS=FINANCE)
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 4)
    assert smtp_server.messages == []  # no dev team address: no hand-off mail
    services.complete_step(session, users["agent"], ticket.id, StepKey.BILLING)
    session.commit()
    [received] = smtp_server.messages
    assert received.rcpt_tos == (FINANCE,)
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert str(received.message["Subject"]).startswith("[EX-000001] Solicitação de faturamento")
    assert "Solicitamos, por gentileza, o faturamento do serviço." in parts(received.message)["text"]


def test_a_rolled_back_step_queues_no_mail(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    mail_app.config.update(DEV_TEAM_ADDRESS=DEV_TEAM, FINANCE_ADDRESS=FINANCE)
    ticket = open_ticket(session, users["agent"])
    advance_to(session, users, ticket, 1)
    sent_before = len(smtp_server.messages)
    services.complete_step(session, users["agent"], ticket.id, StepKey.DEV_HANDOFF)
    assert outbox_count(session) == 1  # queued in the step's own transaction...
    session.rollback()  # ...so it goes away with it
    assert outbox_count(session) == 0
    assert len(smtp_server.messages) == sent_before == 0


def test_automatic_mail_never_answers_automatic_mail(
    mail_app: Flask, session: Session, smtp_server: SmtpServer
) -> None:
    out_of_office = {"From": "ferias@drogaria.example", "Auto-Submitted": "auto-replied"}
    person = {"From": "maria@drogaria.example"}
    looped = queue_mail(
        session,
        ticket_id=None,
        to="ferias@drogaria.example",
        subject="Recebemos",
        text="Ok",
        automatic=True,
        actor=None,
        trigger_headers=out_of_office,
    )
    to_self = queue_mail(
        session,
        ticket_id=None,
        to="Atendimento <ATENDIMENTO@vetorsolucoes.com.br>",
        subject="Eco",
        text="Ok",
        automatic=True,
        actor=None,
    )
    answered = queue_mail(
        session,
        ticket_id=None,
        to="maria@drogaria.example",
        subject="Recebemos",
        text="Ok",
        automatic=True,
        actor=None,
        trigger_headers=person,
    )
    human_reply = queue_mail(
        session,
        ticket_id=None,
        to="ferias@drogaria.example",
        subject="Re: Ausente",
        text="Ok",
        automatic=False,
        actor=None,
        trigger_headers=out_of_office,
    )
    session.commit()
    for mail in (looped, to_self, answered, human_reply):
        session.refresh(mail)
    assert looped.status == OutboundStatus.SUPPRESSED
    assert (
        looped.suppressed_reason == "loop guard: answering an automatic mail (Auto-Submitted: auto-replied)"
    )
    assert to_self.status == OutboundStatus.SUPPRESSED and "our own mailbox" in to_self.suppressed_reason
    assert answered.status == OutboundStatus.SENT and human_reply.status == OutboundStatus.SENT
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "ferias@drogaria.example",
        "maria@drogaria.example",
    ]


def test_daily_cap_of_automatic_mail_per_address(
    mail_app: Flask, session: Session, smtp_server: SmtpServer, users: dict[str, User]
) -> None:
    mail_app.config["MAIL_AUTO_DAILY_CAP"] = 3
    ticket = open_ticket(session, users["agent"])

    def automatic(to: str) -> OutboundMail:
        mail = queue_mail(
            session,
            ticket_id=ticket.id,
            to=to,
            subject="Aviso",
            text="Aviso automático",
            automatic=True,
            actor=None,
        )
        session.commit()
        session.refresh(mail)
        return mail

    statuses = [automatic("Dev <DEV@vetor.example>").status for _ in range(5)]
    assert statuses == ["sent", "sent", "sent", "suppressed", "suppressed"]
    capped = automatic("dev@vetor.example")
    assert capped.suppressed_reason == "daily cap: 3 automatic mails to dev@vetor.example in 24 h (limit 3)"
    assert automatic("outro@vetor.example").status == OutboundStatus.SENT  # the cap is per address
    manual = queue_mail(
        session,
        ticket_id=ticket.id,
        to="dev@vetor.example",
        subject="Oi",
        text="Escrito à mão",
        automatic=False,
        actor=users["agent"],
    )
    session.commit()
    session.refresh(manual)
    assert manual.status == OutboundStatus.SENT  # people are never capped
    assert len(smtp_server.messages) == 5

    requeue(session, users["agent"], capped.id)  # an agent may still decide to send it
    session.commit()
    assert len(smtp_server.messages) == 6
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        assert automatic("dev@vetor.example").status == OutboundStatus.SENT  # a new day
