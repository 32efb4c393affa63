"""What agents do with mail that opened no ticket: read it, open a ticket from it, dismiss it.

Same rules as onboarding.services: plain arguments, a session, only flush, DomainError on refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mail_ingest.extract import extract_customer
from mail_ingest.inbound_models import InboundKind, InboundMessage, InboundOutcome, InboundStatus
from mail_ingest.lookup import in_domains, outbound_models
from mail_ingest.parse import ParsedMessage, ParseError, parse_message
from mail_ingest.storage import raw_bytes
from onboarding import audit, services
from onboarding.config import integrator_domains
from onboarding.db import utcnow
from onboarding.errors import NotFound, WorkflowError
from onboarding.models import Ticket, User
from onboarding.queries import Page


def triage_query() -> Any:
    return select(InboundMessage).where(
        InboundMessage.status == InboundStatus.PROCESSED, InboundMessage.outcome == InboundOutcome.TRIAGE
    )


def quarantine_query() -> Any:
    return select(InboundMessage).where(InboundMessage.status == InboundStatus.QUARANTINED)


def list_page(db: Session, query: Any, page: int, per_page: int) -> Page[InboundMessage]:
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db.scalars(
        query.order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(items=list(items), page=page, per_page=per_page, total=total)


def get_message(db: Session, inbound_id: int) -> InboundMessage:
    message = db.get(InboundMessage, inbound_id)
    if message is None:
        raise NotFound("message_not_found", f"Mensagem {inbound_id} não encontrada.")
    return message


def parsed_copy(db: Session, message: InboundMessage) -> ParsedMessage | None:
    """The stored copy parsed again (for display); None when it cannot be read."""
    try:
        return parse_message(raw_bytes(db, message))
    except (ParseError, LookupError):
        return None


def message_summary(message: InboundMessage) -> dict[str, Any]:
    """The API's triage/quarantine item."""
    return {
        "id": message.id,
        "message_id": message.message_id,
        "from": message.from_address,
        "from_name": message.from_name,
        "subject": message.subject,
        "received_at": message.received_at.isoformat(),
        "reason": message.reason,
    }


@dataclass(frozen=True)
class TicketFields:
    customer_name: str = ""
    cnpj: str = ""
    establishment_codes: list[str] = field(default_factory=list)
    contact_email: str = ""


def suggested_fields(db: Session, message: InboundMessage) -> TicketFields:
    """What the mail says about the customer, to pre-fill the agent's form."""
    parsed = parsed_copy(db, message)
    if parsed is None or message.headers_only:
        return TicketFields(contact_email=message.from_address)
    data = extract_customer(parsed)
    return TicketFields(
        customer_name=data.company_name or "",
        cnpj=data.cnpj or data.invalid_cnpj or "",
        establishment_codes=list(data.establishment_codes),
        contact_email=data.contact_email or message.from_address,
    )


def _in_triage(db: Session, inbound_id: int) -> InboundMessage:
    message = db.scalars(
        select(InboundMessage).where(InboundMessage.id == inbound_id).with_for_update()
    ).one_or_none()
    if message is None:
        raise NotFound("message_not_found", f"Mensagem {inbound_id} não encontrada.")
    db.refresh(message)
    if message.status != InboundStatus.PROCESSED or message.outcome != InboundOutcome.TRIAGE:
        raise WorkflowError("message_not_in_triage", "Esta mensagem não está mais na triagem.")
    return message


def open_ticket_from_mail(
    db: Session,
    actor: User,
    inbound_id: int,
    *,
    customer_name: str,
    cnpj: str | None,
    establishment_codes: Iterable[str],
    contact_email: str = "",
    contract_done: bool = False,
) -> Ticket:
    """Open a ticket from a triage mail; the agent's data follows the rules for people (strict)."""
    services.require_role(actor, services.AGENTS, "abrir chamado a partir de e-mail")
    message = _in_triage(db, inbound_id)
    evidence = message.message_id if contract_done and len(message.message_id) <= 300 else None
    ticket = services.open_ticket(
        db,
        actor,
        customer_name=customer_name,
        cnpj=cnpj,
        establishment_codes=establishment_codes,
        contact_email=contact_email,
        subject=message.subject[:300],
        contract_evidence=evidence,
    )
    message.outcome = InboundOutcome.TICKET
    message.ticket_id = ticket.id
    message.resolved_by_id = actor.id
    message.resolved_at = utcnow()
    audit.record(
        db,
        actor,
        "mail.ticket_opened",
        message,
        ticket_id=ticket.id,
        before={"outcome": InboundOutcome.TRIAGE.value},
        after={"outcome": InboundOutcome.TICKET.value, "message_id": message.message_id},
    )
    db.flush()
    return ticket


def dismiss(db: Session, actor: User, inbound_id: int) -> InboundMessage:
    services.require_role(actor, services.AGENTS, "descartar e-mail da triagem")
    message = _in_triage(db, inbound_id)
    message.outcome = InboundOutcome.DISMISSED
    message.resolved_by_id = actor.id
    message.resolved_at = utcnow()
    audit.record(
        db,
        actor,
        "mail.dismissed",
        message,
        before={"outcome": InboundOutcome.TRIAGE.value},
        after={"outcome": InboundOutcome.DISMISSED.value, "message_id": message.message_id},
    )
    db.flush()
    return message


def ticket_messages(db: Session, ticket_id: int) -> list[dict[str, Any]]:
    """The ticket's mail, both directions, oldest first (the API's timeline items)."""
    if db.get(Ticket, ticket_id) is None:
        raise NotFound("ticket_not_found", f"Chamado {ticket_id} não encontrado.")
    items: list[dict[str, Any]] = []
    for message in db.scalars(
        select(InboundMessage).where(InboundMessage.ticket_id == ticket_id).order_by(InboundMessage.id)
    ):
        items.append(
            {
                "id": message.id,
                "direction": "in",
                "from": message.from_address,
                "subject": message.subject,
                "received_at": message.received_at.isoformat(),
                "message_id": message.message_id,
                "kind": message.kind or "",
                "_at": message.received_at,
            }
        )
    items.extend(_outbound_items(db, ticket_id))
    items.sort(key=lambda item: (item["_at"], item["direction"], item["id"]))
    for item in items:
        del item["_at"]
    return items


def _outbound_items(db: Session, ticket_id: int) -> list[dict[str, Any]]:
    """Sent mail from the outbox, when the outbound part is installed (merged separately)."""
    outbound = outbound_models()
    if outbound is None:
        return []
    sent = outbound.OutboundMail
    items = []
    for mail in db.scalars(select(sent).where(sent.ticket_id == ticket_id).order_by(sent.id)):
        at = mail.sent_at or mail.created_at
        items.append(
            {
                "id": mail.id,
                "direction": "out",
                "from": mail.mail_from,
                "subject": mail.subject,
                "received_at": at.isoformat(),
                "message_id": mail.message_id,
                "kind": mail.template or "outbound",
                "_at": at,
            }
        )
    return items


def integrator_recipients(db: Session, ticket: Ticket) -> list[str]:
    """The integrator's addresses on a ticket: who sent the requests that opened or joined it
    (outbound mail's `integrator` audience)."""
    domains = integrator_domains(current_app.config)
    addresses = db.scalars(
        select(InboundMessage.from_address)
        .where(InboundMessage.ticket_id == ticket.id, InboundMessage.kind == InboundKind.ONBOARDING)
        .order_by(InboundMessage.received_at, InboundMessage.id)
    ).all()
    found = [a for a in addresses if a and in_domains(a, domains)]
    return list(dict.fromkeys(found))


def reply_headers(db: Session, inbound_id: int) -> tuple[str, str]:
    """(In-Reply-To, References) for an answer to a received mail: its References plus itself."""
    message = get_message(db, inbound_id)
    parsed = parsed_copy(db, message)
    chain = [*(parsed.references if parsed is not None else ()), message.message_id]
    return message.message_id, " ".join(dict.fromkeys(chain))
