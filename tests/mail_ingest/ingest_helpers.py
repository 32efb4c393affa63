"""Mail builders and app wiring for the inbound pipeline tests (real Dovecot, real databases)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.br import cnpj as cnpj_lib

from mail_ingest.inbound_models import InboundMessage, InboundRaw
from mail_ingest.jobs import poll_mailbox
from mail_ingest.pipeline import Tally
from onboarding import db
from onboarding.models import Ticket
from tests.support.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
BOAVISTA = "implantacao@boavistatecnologia.com.br"
SUPPORT = "atendimento@vetorsolucoes.com.br"


def sample(name: str) -> bytes:
    matches = sorted(SAMPLES.glob(f"{name}*.eml"))
    assert matches, f"no sample {name}"
    return matches[0].read_bytes()


def make_cnpj(rng: random.Random) -> str:
    base = f"{rng.randrange(10**7, 10**8)}0001"
    return base + cnpj_lib.calc_check_digits(base)


def new_message_id(tag: str = "t") -> str:
    return f"<{tag}.{uuid.uuid4().hex}@test.example>"


def mail(
    *,
    sender: str = "cliente@farmacia.example",
    sender_name: str = "",
    subject: str = "Olá",
    body: str = "Bom dia.",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    if message_id != "":
        msg["Message-ID"] = message_id or new_message_id()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def onboarding_mail(
    cnpj: str | None,
    *,
    name: str = "Drogaria Teste Ltda",
    codes: tuple[str, ...] = ("1048293751",),
    message_id: str | None = None,
    sender: str = BOAVISTA,
    sender_name: str = "Implantação Boavista",
    contact: str = "contato@drogariateste.example",
) -> bytes:
    lines = [
        "Olá, equipe Vetor!",
        "",
        "O cliente abaixo contratou o serviço E-extrato. Pedimos que sigam com a integração.",
        "",
        f"Razão Social: {name}",
    ]
    if cnpj is not None:
        lines.append(f"CNPJ: {cnpj_lib.format(cnpj) if cnpj_lib.is_valid(cnpj) else cnpj}")
    if codes:
        lines.append(f"Código do Estabelecimento: {', '.join(codes)}")
    lines += ["Contato: Maria Souza", f"E-mail: {contact}", "", "Atenciosamente,", "Boavista Tecnologia"]
    return mail(
        sender=sender,
        sender_name=sender_name,
        subject=f"Novo cliente E-extrato – {name}",
        body="\n".join(lines),
        message_id=message_id,
    )


def configure(app: Flask, server: DovecotServer, security: str = "none", **extra: Any) -> Flask:
    app.config.update(server.env(security))  # type: ignore[arg-type]
    app.config["IMAP_SSL_CONTEXT"] = server.ssl_context()
    app.config["IMAP_PROCESSED_FOLDER"] = ""
    app.config["IMAP_READ_TIMEOUT"] = 20
    app.config.update(extra)
    return app


def poll(app: Flask) -> Tally:
    with app.app_context():
        return poll_mailbox()


@contextmanager
def fresh_session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        session = db.new_session()
        try:
            yield session
        finally:
            session.close()


def messages(app: Flask) -> list[InboundMessage]:
    with fresh_session(app) as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def by_message_id(app: Flask, message_id: str) -> InboundMessage:
    with fresh_session(app) as session:
        return session.scalars(select(InboundMessage).where(InboundMessage.message_id == message_id)).one()


def tickets(app: Flask) -> list[Ticket]:
    with fresh_session(app) as session:
        found = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        for ticket in found:
            _ = ticket.customer.establishments, ticket.steps
        return found


def row_counts(app: Flask) -> tuple[int, int, int]:
    """(messages, raw blobs, tickets)."""
    with fresh_session(app) as session:
        return (
            session.scalar(select(func.count()).select_from(InboundMessage)) or 0,
            session.scalar(select(func.count()).select_from(InboundRaw)) or 0,
            session.scalar(select(func.count()).select_from(Ticket)) or 0,
        )
