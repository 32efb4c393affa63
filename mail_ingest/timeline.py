"""The ticket page's timeline: one entry per mail of the ticket (via onboarding.web_hooks)."""

from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from mail_ingest.inbound_models import InboundKind, InboundMessage
from onboarding.models import Ticket

KIND_LABELS = {
    InboundKind.ONBOARDING: "Solicitação de integração recebida",
    InboundKind.REPLY: "Resposta recebida",
    InboundKind.AUTO_REPLY: "Resposta automática recebida",
    InboundKind.BOUNCE: "Aviso de falha de entrega",
    InboundKind.OTHER: "E-mail recebido",
}


def timeline_entries(db: Session, ticket: Ticket) -> list[Any]:
    from onboarding.web_hooks import TimelineEntry

    entries = []
    for message in db.scalars(
        select(InboundMessage).where(InboundMessage.ticket_id == ticket.id).order_by(InboundMessage.id)
    ):
        label = (
            KIND_LABELS.get(InboundKind(message.kind), "E-mail recebido")
            if message.kind
            else "E-mail recebido"
        )
        entries.append(
            TimelineEntry(
                when=message.received_at,
                kind="mail",
                content={
                    "title": f"{label}: {message.subject or '(sem assunto)'}",
                    "body": f"De {message.from_address or 'remetente desconhecido'}",
                    "actor": message.from_name or message.from_address,
                    "url": url_for("mail_web.message", inbound_id=message.id),
                },
            )
        )
    return entries
