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


def outbound_entries(db: Session, ticket: Ticket) -> list[Any]:
    """Outgoing mail of the ticket, beside the incoming, in the same timeline."""
    from mail_ingest.outbound import outbound_timeline
    from mail_ingest.outbound_views import STATUS_LABELS
    from onboarding.web_hooks import TimelineEntry

    return [
        TimelineEntry(
            when=item["when"],
            kind="mail",
            content={
                "title": f"E-mail enviado ({STATUS_LABELS.get(item['status'], item['status'])}): "
                f"{item['subject'] or '(sem assunto)'}",
                "body": "Para " + ", ".join(item["to"]),
                "actor": item["from"],
                "url": url_for("mail_outbound.ticket_mail_page", ticket_id=ticket.id),
            },
        )
        for item in outbound_timeline(db, ticket.id)
    ]


def conversation_panel(db: Session, ticket: Ticket, user: Any) -> Any:
    """Beside the checklist: the mail the current step calls for, the other templates, the reply box."""
    from markupsafe import Markup, escape

    from mail_ingest.templates import STEP_TEMPLATES, TEMPLATES
    from onboarding.services import AGENTS
    from onboarding.web_hooks import TicketPanel

    if getattr(user, "role", None) not in AGENTS or ticket.status == "closed":
        return None
    suggested = STEP_TEMPLATES.get(ticket.current_step or "")
    links = []
    for name, template in TEMPLATES.items():
        url = url_for("mail_outbound.compose", ticket_id=ticket.id, template=name)
        css = ' class="button"' if name == suggested else ""
        hint = " (etapa atual)" if name == suggested else ""
        links.append(f'<li><a{css} href="{escape(url)}">{escape(template.label)}{hint}</a></li>')
    conversation = url_for("mail_outbound.ticket_mail_page", ticket_id=ticket.id)
    body = Markup(
        '<ul class="mail-templates">' + "".join(links) + "</ul>"
        f'<p><a href="{escape(conversation)}">Ver a conversa e responder</a></p>'
    )
    return TicketPanel(title="E-mails", body=body, order=50)
