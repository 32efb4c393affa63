"""A mail the desk really sent (real SMTP) is answered by a client that drops References and the
subject; delivered through the real Dovecot, the answer lands on its ticket by our token alone."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from mail_ingest import ticket_mail
from onboarding.models import User
from tests.mail_ingest.ingest_helpers import by_message_id, configure, mail, new_message_id, poll
from tests.onboarding.helpers import open_ticket
from tests.support.dovecot import DovecotServer
from tests.support.smtp import SmtpServer


def test_answer_to_a_sent_mail_finds_its_ticket_by_token_alone(
    mail_app: Flask,
    session: Session,
    users: dict[str, User],
    smtp_server: SmtpServer,
    imap_mailbox: DovecotServer,
) -> None:
    ticket = open_ticket(session, users["agent"])
    other = open_ticket(session, users["agent"], customer_name="Outra Drogaria", cnpj="90830166000128")
    ticket_mail.send_from_ticket(
        session,
        users["agent"],
        ticket.id,
        "customer_orientation",
        "contato@drogariateste.example",
        "Orientações",
        "Texto da orientação.",
    )
    session.commit()
    [sent] = smtp_server.wait_for(1)
    our_id = sent.message["Message-ID"]

    answer_id = new_message_id("answer")
    imap_mailbox.append(
        mail(
            sender="alguem@desconhecido.example",  # not a known participant
            subject="sem relação",  # no ticket number either
            message_id=answer_id,
            headers={"In-Reply-To": our_id},  # and no References
        )
    )
    configure(mail_app, imap_mailbox)
    poll(mail_app)

    answer = by_message_id(mail_app, answer_id)
    assert answer.ticket_id == ticket.id != other.id
